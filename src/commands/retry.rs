//! `keyhook retry`: send every pending or failed delivery that is due.

use std::io::Write;

use std::sync::Mutex;

use super::sending::{self, Failure, Held, Stop};
use super::{Context, printable};
use crate::cli::RetryArgs;
use crate::definitions::Task;
use crate::delivery::dispatch::{Event, Tally};
use crate::error::{Exit, Result};
use crate::state::State;
use crate::state::deliveries::Queue;

pub fn run(context: &Context, args: &RetryArgs, out: &mut impl Write) -> Result {
    if let Some(name) = &args.task {
        context.task(name)?;
    }
    let stop = Stop::install();
    let exit = send_due(context, args.task.as_deref(), true, &[], &stop, out)?;
    Ok(exit)
}

/// Sends the due deliveries of every task (or of `only`), task by task, each under its lock,
/// then (with `webhooks`) those of event webhooks. Prints one line per source that had any;
/// returns the combined exit. A task whose webhook cannot be resolved with a problem among
/// `said` (printed already, by `run-due`) is named, not the problem again.
pub(super) fn send_due(
    context: &Context,
    only: Option<&str>,
    webhooks: bool,
    said: &[String],
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let state = context.open_state()?;
    let now = context.clock.now().timestamp();
    let only = only
        .and_then(|name| context.definitions.task(name))
        .map(|task| task.stem.clone());
    let mut exit = Exit::Success;
    let mut webhook_sources = Vec::new();
    for stem in state.tasks_with_due(now)? {
        // A task and an event webhook may share a name (a webhook added under a task's
        // stem): each delivery goes by its kind, never to the other's receiver.
        let (events, tasks) = state.pending_kinds(&stem)?;
        if events && tasks {
            writeln!(
                out,
                "error: `{stem}` is the name of a task and of an event webhook, and deliveries \
                 of both wait under it; neither is sent, so none goes to the other's receiver. \
                 Rename the webhook (its `name`) or the task file; these deliveries stay pending \
                 (`keyhook log --task {stem}`)"
            )?;
            exit = exit.worst(Exit::Config);
            continue;
        }
        if events || (!tasks && state.is_webhook_source(&stem)?) {
            webhook_sources.push(stem);
            continue;
        }
        if only.as_ref().is_some_and(|only| *only != stem) {
            continue;
        }
        if stop.exit().is_some() {
            break;
        }
        let sent = retry_task(context, &state, &stem, said, stop, out);
        exit = exit.worst(sending::or_source_local(sent, &stem, out)?);
    }
    if !webhooks && !webhook_sources.is_empty() {
        // `run-due` sends webhooks' deliveries with its dispatch pass, which knows only the
        // webhooks of the files: those of a source no file defines any more are said here.
        let summaries = state.source_summaries()?;
        for summary in super::webhook_sources::stranded(&context.definitions, &summaries) {
            if webhook_sources.contains(&summary.source) {
                writeln!(
                    out,
                    "{}",
                    super::webhook_sources::stranded_words(&context.definitions, summary)
                )?;
                exit = exit.worst(Exit::DeliveryFailed);
            }
        }
    }
    if webhooks && only.is_none() && !webhook_sources.is_empty() {
        exit = exit.worst(super::dispatch::send_sources(
            context,
            &webhook_sources,
            stop,
            out,
        )?);
    }
    Ok(exit)
}

fn retry_task(
    context: &Context,
    state: &State,
    stem: &str,
    said: &[String],
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let Some(task) = context.definitions.task_by_stem(stem) else {
        writeln!(
            out,
            "{stem}: deliveries wait, but tasks/{stem}.toml is gone or invalid; they stay \
             pending: restore or fix the file, or give them up with `keyhook prune \
             --removed-tasks`"
        )?;
        return Ok(Exit::DeliveryFailed);
    };
    if let Some(switch) = sending::switched_off(context, task) {
        // Nothing is sent while a switch is off: the retries wait, as a run's deliveries do.
        writeln!(out, "{}: retries wait: {switch}", task.name)?;
        return Ok(Exit::Success);
    }
    let held = match hold(context, state, task, said, out)? {
        Ok(held) => held,
        Err(exit) => return Ok(exit),
    };
    let now = context.clock.now().timestamp();
    if state.task_state(stem, now)?.webhook_gone.is_some() {
        writeln!(
            out,
            "WARNING: {}: webhook DISABLED after 410 Gone; retries wait until `keyhook enable {}`",
            task.name,
            super::printable::shell_word(stem)
        )?;
        return Ok(Exit::DeliveryFailed);
    }
    let failures = Mutex::new(Vec::new());
    let observe = |event: &Event| {
        if let (Some(failure), Ok(mut failures)) = (Failure::of(event), failures.lock()) {
            failures.push(failure);
        }
    };
    let queue = Queue::DueForTask(stem, now);
    let tally = held.send(context, state, queue, stop, &observe)?;
    for failure in failures.into_inner().unwrap_or_default() {
        writeln!(out, "{}", failure_line(&failure))?;
    }
    print(task, &tally, out)?;
    sending::aftermath(context, task, &tally, out)?;
    Ok(sending::exit_of(&tally, stop))
}

/// The task's lock and target, or the exit its retries end with when another host or process
/// holds the lock or the target cannot be resolved (said on `out`, unless among `said`).
fn hold<'a>(
    context: &Context,
    state: &State,
    task: &'a Task,
    said: &[String],
    out: &mut impl Write,
) -> Result<std::result::Result<Held<'a>, Exit>> {
    match sending::hold(context, state, task) {
        Ok(Some(held)) => Ok(Ok(held)),
        Ok(None) if state.is_shared() => {
            // Several hosts share the state: another one is sending them now.
            writeln!(
                out,
                "{}: another host or process is sending its retries",
                task.name
            )?;
            Ok(Err(Exit::Success))
        }
        Ok(None) => {
            writeln!(
                out,
                "{}: another keyhook process is running it; its retries wait",
                task.name
            )?;
            Ok(Err(Exit::Locked))
        }
        Err(error) if error.exit == Exit::Config => {
            let problem = error.to_string();
            match said.contains(&problem) {
                true => writeln!(out, "{}: retries wait (the error above)", task.name)?,
                false => writeln!(out, "{}: retries wait: {problem}", task.name)?,
            }
            Ok(Err(Exit::Config))
        }
        Err(error) => Err(error),
    }
}

fn failure_line(failure: &Failure) -> String {
    format!(
        "failed: license {} ({}), delivery {}: {}",
        failure.license_id,
        printable::short(&failure.activation_key),
        failure.delivery_id,
        printable::short(&failure.error)
    )
}

fn print(task: &Task, tally: &Tally, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: retried {}, {} delivered, {} failed",
        task.name,
        tally.delivered + tally.retrying + tally.dead,
        tally.delivered,
        tally.retrying + tally.dead
    )
}
