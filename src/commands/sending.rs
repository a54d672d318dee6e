//! What the sending commands (`run-task`, `retry`, `resend`, `run-due`) share: the one send
//! path (target resolved, task lock held, stale claims released, queue dispatched), stop
//! signals, the failures collected, and how an outcome is printed and turned into an exit.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use chrono::TimeZone;

use serde::Serialize;

use super::Context;
use crate::definitions::Task;
use crate::definitions::endpoint::EndpointError;
use crate::delivery::dispatch::{self, Event, Tally};
use crate::delivery::target::Target;
use crate::error::{Error, Exit, Result};
use crate::state::deliveries::{Queue, Status};
use crate::state::lock::{Acquired, TaskLock};
use crate::state::postgres::{PgLock, SessionLock};
use crate::state::{DeliveryQueue, State};
use crate::task_source;

/// Set by SIGINT or SIGTERM: senders finish the request in flight, record it, and stop.
pub struct Stop {
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
    any: Arc<AtomicBool>,
}

impl Stop {
    /// Installs the handlers. A second Ctrl-C ends the process at once.
    pub fn install() -> Stop {
        let stop = Stop {
            interrupt: Arc::new(AtomicBool::new(false)),
            terminate: Arc::new(AtomicBool::new(false)),
            any: Arc::new(AtomicBool::new(false)),
        };
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for (signal, own) in [(SIGINT, &stop.interrupt), (SIGTERM, &stop.terminate)] {
            // Registered in this order, the second signal exits before the flag is seen again.
            let _ = flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(own));
            let _ = flag::register(signal, Arc::clone(own));
            let _ = flag::register(signal, Arc::clone(&stop.any));
        }
        crate::licenses::query::watch_stop(
            Arc::clone(&stop.interrupt),
            Arc::clone(&stop.terminate),
        );
        stop
    }

    /// The flag senders watch.
    pub fn flag(&self) -> &AtomicBool {
        &self.any
    }

    /// The same flag, for a callback that must own it (SQLite's progress handler).
    pub fn shared_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.any)
    }

    /// The exit for a stopped run: 130 after SIGINT, 143 after SIGTERM.
    pub fn exit(&self) -> Option<Exit> {
        if self.terminate.load(Ordering::SeqCst) {
            Some(Exit::Interrupted(15))
        } else if self.interrupt.load(Ordering::SeqCst) {
            Some(Exit::Interrupted(2))
        } else {
            None
        }
    }
}

/// Takes the task's lock, or says who has it.
pub fn lock(context: &Context, task: &str) -> Result<Option<TaskLock>> {
    // A state path that cannot hold the file is the error to show, not its lock's.
    context.state_exists()?;
    let acquired = TaskLock::try_acquire(&context.state_path, task).map_err(|error| {
        Error::runtime(anyhow!(
            "could not take the lock of task `{task}` ({}): {}; keyhook needs to write in \
             the folder of the state database (--state, KEYHOOK_STATE)",
            crate::state::lock::lock_path(&context.state_path, task).display(),
            crate::file_access::describe(&error)
        ))
    })?;
    match acquired {
        Acquired::Held(lock) => Ok(Some(lock)),
        Acquired::Busy(_) => Ok(None),
    }
}

/// Removes what runs of `task` killed while they were being recorded left, if the task's lock
/// is free (a task whose lock is held may be recording right now, and keeps its own); how many
/// runs went. A PostgreSQL state records a run in one transaction: nothing is left there.
pub fn clear_killed_recordings(context: &Context, state: &State, task: &str) -> Result<usize> {
    let State::Sqlite(db) = state else {
        return Ok(0);
    };
    match lock(context, task)? {
        Some(_lock) => Ok(db.clear_killed_recordings(task)?),
        None => Ok(0),
    }
}

/// The error for a task another process is running.
pub fn locked(task: &Task) -> Error {
    Error::locked(anyhow!(
        "task `{}` is being run by another keyhook process; this one did nothing",
        task.name
    ))
}

/// The target of a task: its secret resolved and its retry policy settled.
pub fn target(context: &Context, task: &Task) -> Result<Target> {
    resolve_target(context, task).map_err(|error| {
        Error::config(anyhow!(
            "task `{}` ({}): [webhook]: {error}",
            task.name,
            task.path.display()
        ))
    })
}

/// [`target`], with the problem in words about the `[webhook]` table; `check` runs this too.
pub fn resolve_target(
    context: &Context,
    task: &Task,
) -> std::result::Result<Target, EndpointError> {
    task_source::target(task, &context.definitions.settings)
}

/// A task's lock: a file lock beside a SQLite state, a session advisory lock on a server.
/// Either is let go when dropped, or when the process dies.
#[derive(Debug)]
#[expect(dead_code, reason = "held for its drop, which lets the lock go")]
pub enum Lock {
    File(TaskLock),
    Server(Box<PgLock>),
}

/// Takes the task's lock in `state`, or says (`None`) that another process holds it.
pub fn lock_in(context: &Context, state: &State, task: &str) -> Result<Option<Lock>> {
    match state {
        State::Sqlite(_) => Ok(lock(context, task)?.map(Lock::File)),
        State::Postgres(server) => Ok(server
            .try_lock(task)?
            .map(|lock| Lock::Server(Box::new(lock)))),
    }
}

/// A task ready to send: its target resolved and its lock held (until this is dropped).
pub struct Held<'a> {
    pub task: &'a Task,
    pub target: Target,
    _lock: Lock,
}

/// Resolves `task`'s target (a configuration error if it cannot be), then takes its lock:
/// `None` when another process holds it.
pub fn hold<'a>(context: &Context, state: &State, task: &'a Task) -> Result<Option<Held<'a>>> {
    let target = target(context, task)?;
    Ok(lock_in(context, state, &task.stem)?.map(|lock| Held {
        task,
        target,
        _lock: lock,
    }))
}

impl Held<'_> {
    /// The one send path: claims a killed process left go back to the queue (only the lock's
    /// holder may do that), then `queue` is sent (claim, POST, commit; a stop or a 410 halts
    /// it), calling `observe` after every attempt.
    pub fn send(
        &self,
        context: &Context,
        state: &State,
        queue: Queue,
        stop: &Stop,
        observe: &(dyn Fn(&Event) + Sync),
    ) -> Result<Tally> {
        let tally = send_held(context, state.queue(), &self.target, queue, stop, observe)?;
        warn_lost(state, &self.task.name);
        Ok(tally)
    }
}

/// The exit of one source's send among several (`retry`, `run-due`, `dispatch`): when it
/// stopped on trouble of its own (no thread for it, a sending thread that panicked), not the
/// state database's, that is said on `out` with the source's name and the others still go.
pub fn or_source_local(result: Result<Exit>, name: &str, out: &mut impl Write) -> Result<Exit> {
    match result {
        Err(error)
            if error
                .inner
                .downcast_ref::<dispatch::SendError>()
                .is_some_and(dispatch::SendError::is_source_local) =>
        {
            writeln!(out, "error: {name}: {error}")?;
            Ok(error.exit)
        }
        other => other,
    }
}

/// Says (on stderr) how many outcomes of `source` went unrecorded, their lease lost.
pub fn warn_lost(state: &State, source: &str) {
    let lost = state.take_lost_leases();
    if lost > 0 {
        eprintln!(
            "warning: `{source}`: {lost} outcome(s) not recorded: their lease ran out and \
             another host took the deliveries over (the receiver may see them twice, with the \
             same delivery id); a longer --lease (KEYHOOK_LEASE) avoids it"
        );
    }
}

/// A webhook source (one URL of an event webhook) ready to send: its lock held.
pub struct HeldSource<'a> {
    pub target: &'a Target,
    _lock: SourceLock<'a>,
}

/// A webhook URL's lock: a file lock beside a SQLite state; on a server, the state's own
/// session holds it (taken on every `watch` pass, it costs no connection).
#[derive(Debug)]
#[expect(dead_code, reason = "held for its drop, which lets the lock go")]
enum SourceLock<'a> {
    File(TaskLock),
    Session(SessionLock<'a>),
}

/// Takes the lock of `target`'s source in `state`: `None` when another process holds it.
pub fn hold_source<'a>(
    context: &Context,
    state: &'a State,
    target: &'a Target,
) -> Result<Option<HeldSource<'a>>> {
    let lock = match state {
        State::Sqlite(_) => lock(context, &target.source)?.map(SourceLock::File),
        State::Postgres(server) => server
            .try_lock_here(&target.source)?
            .map(SourceLock::Session),
    };
    Ok(lock.map(|lock| HeldSource {
        target,
        _lock: lock,
    }))
}

impl HeldSource<'_> {
    /// The one send path, as [`Held::send`].
    pub fn send(
        &self,
        context: &Context,
        state: &State,
        queue: Queue,
        stop: &Stop,
        observe: &(dyn Fn(&Event) + Sync),
    ) -> Result<Tally> {
        let tally = send_held(context, state.queue(), self.target, queue, stop, observe)?;
        warn_lost(state, &self.target.source);
        Ok(tally)
    }
}

/// The one send path, for a source whose lock is held: claims a killed process left go back
/// to the queue (only the lock's holder may do that), then `queue` is sent.
fn send_held(
    context: &Context,
    state: &dyn DeliveryQueue,
    target: &Target,
    queue: Queue,
    stop: &Stop,
    observe: &(dyn Fn(&Event) + Sync),
) -> Result<Tally> {
    state.release_claims(&target.source, None)?;
    let tally = dispatch::send(state, queue, target, &context.clock, stop.flag(), observe)?;
    Ok(tally)
}

/// One failed attempt, as the sending commands print it and `run-task --json` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub license_id: i64,
    pub activation_key: String,
    pub delivery_id: String,
    pub status: Option<u16>,
    pub error: String,
    /// `failed` (will be retried) or `dead`.
    pub state: &'static str,
}

impl Failure {
    /// The failure an attempt was, if it was one.
    pub fn of(event: &Event) -> Option<Failure> {
        let error = event.attempt.error.as_ref()?;
        Some(Failure {
            license_id: event.delivery.license_id,
            activation_key: event.delivery.activation_key.clone(),
            delivery_id: event.delivery.id.clone(),
            status: event.attempt.status,
            error: error.clone(),
            state: if event.status == Status::Dead {
                "dead"
            } else {
                "failed"
            },
        })
    }
}

/// Which switch keeps `task` from sending, in words (`webhooks_enabled = false` in the
/// settings, or the task's `[webhook] enabled = false`); `None` when both are on. Runs, their
/// helpers and the retries all stop at it.
pub fn switched_off(context: &Context, task: &Task) -> Option<String> {
    all_switched_off(context).or_else(|| {
        (!task.webhook.enabled)
            .then(|| format!("[webhook] enabled = false in {}", task.path.display()))
    })
}

/// `webhooks_enabled = false in keyhook.toml`, when that switch keeps every webhook, a task's
/// or an event webhook's, from sending.
pub fn all_switched_off(context: &Context) -> Option<String> {
    (!context.definitions.settings.webhooks_enabled).then(|| {
        format!(
            "webhooks_enabled = false in {}",
            crate::definitions::settings::FILE
        )
    })
}

/// The exit for a tally: failures, a 410, or a stop.
pub fn exit_of(tally: &Tally, stop: &Stop) -> Exit {
    if let Some(exit) = stop.exit() {
        return exit;
    }
    if tally.retrying > 0 || tally.dead > 0 || tally.gone {
        Exit::DeliveryFailed
    } else {
        Exit::Success
    }
}

/// The lines after a summary: what will be retried, what died, what was left.
/// What a 410 Gone from a task's receiver did, and what to do.
pub fn gone_warning(task: &Task) -> String {
    format!(
        "WARNING: {} answered 410 Gone: the webhook of task `{}` is DISABLED; fix its url, \
         then run `keyhook enable {}`",
        crate::definitions::task::shown_url(&task.webhook.url),
        task.name,
        super::printable::shell_word(&task.stem)
    )
}

pub fn aftermath(
    context: &Context,
    task: &Task,
    tally: &Tally,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if tally.gone {
        writeln!(out, "{}", gone_warning(task))?;
    }
    if tally.retrying > 0 {
        writeln!(
            out,
            "{} failed deliveries will be retried (`keyhook retry` or `keyhook run-due`)",
            tally.retrying
        )?;
    }
    if tally.dead > 0 {
        writeln!(
            out,
            "{} deliveries are dead (`keyhook log --status dead`)",
            tally.dead
        )?;
    }
    if tally.interrupted {
        writeln!(
            out,
            "stopped by a signal: the rest stays pending for `keyhook retry`"
        )?;
    }
    let _ = context;
    Ok(())
}

/// A Unix time in the configured zone, for display, with the zone's abbreviation (`CET`,
/// `UTC`): a cron mail read elsewhere says which clock it means.
pub fn local_time(context: &Context, unix: i64) -> String {
    match context.clock.zone().timestamp_opt(unix, 0).single() {
        Some(at) => at.format("%Y-%m-%d %H:%M:%S %Z").to_string(),
        None => unix.to_string(),
    }
}
