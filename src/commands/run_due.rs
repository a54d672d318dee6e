//! `keyhook run-due`: what cron and systemd call. Retries first, then every due task.

use std::io::Write;

use anyhow::anyhow;
use chrono::DateTime;

use super::dispatch::Dispatcher;
use super::run_task::{self, Options};
use super::sending::{self, Stop, local_time};
use super::{Context, retry};
use crate::definitions::Task;
use crate::error::{Error, Exit, Result};
use crate::file_access::{Presence, presence};
use crate::licenses::database::Location;
use crate::schedule::due::{self, Decision, Facts};

pub fn run(context: &Context, out: &mut impl Write) -> Result {
    let stop = Stop::install();
    let tasks: Vec<&Task> = context
        .definitions
        .tasks
        .iter()
        .filter(|task| task.enabled)
        .collect();
    let said = say_problems(context, &tasks, out)?;
    let mut exit = match said.is_empty() {
        true => Exit::Success,
        false => Exit::Config,
    };
    exit =
        exit.worst(retry::send_due(context, None, false, &said, &stop, out).map_err(ending(exit))?);
    exit = exit.worst(dispatch_events(context, &said, &stop, out).map_err(ending(exit))?);
    if tasks.is_empty() {
        return Ok(exit);
    }
    let state = context.open_state().map_err(ending(exit))?;
    let now = context.clock.now();
    let stems: Vec<&str> = tasks.iter().map(|task| task.stem.as_str()).collect();
    let known = state
        .see_tasks(&stems, now.timestamp())
        .map_err(|error| ending(exit)(error.into()))?;
    drop(state);
    for task in tasks {
        if stop.exit().is_some() {
            break;
        }
        let Some((_, facts)) = known.iter().find(|(stem, _)| *stem == task.stem) else {
            continue;
        };
        if let Some(warning) = super::future_state(context, task, facts) {
            writeln!(std::io::stderr(), "warning: {warning}")?;
            exit = exit.worst(Exit::Config);
            continue;
        }
        let facts = Facts {
            first_seen: facts.first_seen,
            last_slot: facts.last_slot,
            catch_up: task.catch_up,
        };
        let outcome = match due::decide(&task.schedule, context.zone_of(task), now, &facts) {
            Decision::NotDue => continue,
            Decision::Skipped(slot) => skip(context, task, slot.timestamp(), out),
            Decision::Due(slot) => run_slot(context, task, slot.timestamp(), &stop, out),
        };
        exit = exit.worst(match outcome {
            Ok(exit) => exit,
            Err(error) => {
                // A due task whose file (or search's) is broken stops on the problems said
                // above: only what was not, if anything.
                if let Some(unsaid) = not_yet_said(&error, &said) {
                    writeln!(out, "error: {unsaid}")?;
                }
                error.exit
            }
        });
    }
    Ok(exit.worst(stop.exit().unwrap_or(Exit::Success)))
}

/// An error that ends the call, keeping the exit of what was said before it when that is more
/// serious (a configuration error said above, then a state that cannot be opened: exit 2).
fn ending(exit: Exit) -> impl Fn(Error) -> Error {
    move |mut error| {
        error.exit = error.exit.worst(exit);
        error
    }
}

/// The lines of `error` that are not among the problems `said` already (a file's problems are
/// a line each), as printed after `error: `; `None` when every one was said.
fn not_yet_said(error: &Error, said: &[String]) -> Option<String> {
    let text = error.to_string();
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| line.strip_prefix("error: ").unwrap_or(line))
        .filter(|line| !said.iter().any(|s| s == line))
        .collect();
    (!lines.is_empty()).then(|| lines.join("\nerror: "))
}

/// Says what keeps tasks from running, on every call: the definitions' problems, each enabled
/// task's secret that cannot be read here (a `secret_env` not set in this environment, a
/// `secret_file` that cannot be read: what the run would stop on), and (with
/// tasks enabled) a SQLite license database that is not there, rather than only when a task's
/// slot comes, for a daily task hours later. Only the database's presence is looked at (a
/// stat): a busy or unreadable database, or a server's, is said by the run that meets it. A
/// due task stopping on one of them does not say it again.
fn say_problems(context: &Context, tasks: &[&Task], out: &mut impl Write) -> Result<Vec<String>> {
    let mut said: Vec<String> = context
        .definitions
        .problems
        .iter()
        .chain(&context.definitions.catalog_problems)
        .map(ToString::to_string)
        .collect();
    // Only the secrets: cheap (a variable, a small file) where the TLS files would build a
    // client configuration per task, every minute. The message is the run's own.
    for task in tasks {
        if task.webhook.secret.resolve_all().is_err()
            && let Err(error) = super::sending::target(context, task)
        {
            said.push(error.to_string());
        }
    }
    if !tasks.is_empty()
        && let Location::Sqlite(path) = &context.db
        && let Presence::Absent | Presence::Unusable(_) = presence(path)
        && let Err(error) = crate::licenses::open::connect(path)
    {
        said.push(error.to_string());
    }
    for problem in &said {
        writeln!(out, "error: {problem}")?;
    }
    Ok(said)
}

/// Events too, so one cron line covers both: a pass when any webhook is active in the
/// runner's environment (`--environment`, `KEYHOOK_ENVIRONMENT`, default production).
/// A failure here (a webhook file refused, events not installed, the outbox unreadable) is
/// said, unless it was already, and counted in the exit; the tasks still run.
fn dispatch_events(
    context: &Context,
    said: &[String],
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    if context.definitions.webhooks.is_empty() {
        return Ok(Exit::Success);
    }
    let mut quiet = Vec::new();
    let passed = Dispatcher::new(context, &mut quiet).and_then(|dispatcher| {
        let Some(mut dispatcher) = dispatcher else {
            return Ok(Exit::Success);
        };
        dispatcher.say_waiting_only_with_sends();
        // The broken files are among the problems said above: only why events wait, once.
        if dispatcher.held.is_some() {
            dispatcher.held = Some(super::dispatch::HOLD.to_string());
        }
        dispatcher.pass(context, stop, out)
    });
    match passed {
        Ok(exit) => Ok(exit),
        Err(error) => {
            if let Some(unsaid) = not_yet_said(&error, said) {
                writeln!(out, "error: {unsaid}")?;
            }
            Ok(error.exit)
        }
    }
}

fn run_slot(
    context: &Context,
    task: &Task,
    slot: i64,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let options = Options {
        slot: Some(slot),
        concurrency: None,
        live: true,
    };
    let report = match run_task::execute(context, task, &options, stop, out) {
        Err(error) if error.exit == Exit::Locked => {
            writeln!(
                out,
                "{}: still running from an earlier call; skipped",
                task.name
            )?;
            return Ok(Exit::Locked);
        }
        other => other?,
    };
    run_task::print(context, task, &report, out)?;
    Ok(report.exit(stop))
}

fn skip(context: &Context, task: &Task, slot: i64, out: &mut impl Write) -> Result<Exit> {
    let window = task.catch_up.unwrap_or_else(|| task.schedule.period());
    let window = humantime::format_duration(window.to_std().unwrap_or_default()).to_string();
    let why = format!("missed by more than the catch-up window ({window})");
    let state = context.open_state()?;
    // A run of the slot killed while it was recorded holds the slot's key, and the skip would
    // not be recorded: the task's lock holder removes it first. (A task whose lock is held
    // is running, perhaps recording this very slot: its run is the record then.)
    sending::clear_killed_recordings(context, &state, &task.stem)?;
    state.record_skip(
        &task.stem,
        &task.name,
        slot,
        context.clock.now().timestamp(),
        &why,
    )?;
    writeln!(
        out,
        "{}: skipped the slot at {}: {why}",
        task.name,
        local_time(context, slot)
    )?;
    let _ = DateTime::from_timestamp(slot, 0).ok_or_else(|| anyhow!("slot out of range"));
    Ok(Exit::Success)
}
