//! `keyhook retry`: send every pending or failed delivery that is due.

use std::io::Write;

use super::Context;
use super::sending::{self, Stop};
use crate::cli::RetryArgs;
use crate::delivery::run::{self, Event};
use crate::error::{Exit, Result};
use crate::state::deliveries::Queue;

pub fn run(context: &Context, args: &RetryArgs, out: &mut impl Write) -> Result {
    if let Some(name) = &args.task {
        context.task(name)?;
    }
    let stop = Stop::install();
    let exit = send_due(context, args.task.as_deref(), &stop, out)?;
    Ok(exit)
}

/// Sends the due deliveries of every task (or of `only`), task by task, each under its lock.
/// Prints one line per task that had any; returns the combined exit.
pub(super) fn send_due(
    context: &Context,
    only: Option<&str>,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let state = context.state()?;
    let now = context.clock.now().timestamp();
    let only = only
        .and_then(|name| context.definitions.task(name))
        .map(|task| task.stem.clone());
    let mut exit = Exit::Success;
    for stem in state.tasks_with_due(now)? {
        if only.as_ref().is_some_and(|only| *only != stem) {
            continue;
        }
        if stop.exit().is_some() {
            break;
        }
        exit = exit.worst(retry_task(context, &state, &stem, stop, out)?);
    }
    Ok(exit)
}

fn retry_task(
    context: &Context,
    state: &crate::state::StateDb,
    stem: &str,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let Some(task) = context.definitions.task(stem) else {
        writeln!(
            out,
            "{stem}: deliveries wait, but tasks/{stem}.toml is gone or invalid; they stay pending"
        )?;
        return Ok(Exit::DeliveryFailed);
    };
    let target = match sending::target(context, task) {
        Ok(target) => target,
        Err(error) => {
            writeln!(out, "{}: retries wait: {error}", task.name)?;
            return Ok(Exit::Config);
        }
    };
    let Some(_lock) = sending::lock(context, stem)? else {
        writeln!(
            out,
            "{}: another keyhook process is running it; its retries wait",
            task.name
        )?;
        return Ok(Exit::Locked);
    };
    let now = context.clock.now().timestamp();
    let task_state = state.task_state(stem, now)?;
    if task_state.webhook_gone.is_some() {
        writeln!(
            out,
            "WARNING: {}: webhook DISABLED after 410 Gone; retries wait until `keyhook enable {stem}`",
            task.name
        )?;
        return Ok(Exit::DeliveryFailed);
    }
    state.release_claims(stem, None)?;
    let failures = std::sync::Mutex::new(Vec::new());
    let observe = |event: &Event| {
        if let (Some(error), Ok(mut failures)) = (&event.attempt.error, failures.lock()) {
            failures.push(format!(
                "failed: license {} ({}), delivery {}: {}",
                event.delivery.license_id,
                super::printable::short(&event.delivery.activation_key),
                event.delivery.id,
                super::printable::short(error)
            ));
        }
    };
    let tally = run::send(
        state,
        Queue::DueForTask(stem, now),
        &target,
        &context.clock,
        stop.flag(),
        &observe,
    )?;
    for line in failures.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    writeln!(
        out,
        "{}: retried {}, {} delivered, {} failed",
        task.name,
        tally.delivered + tally.retrying + tally.dead,
        tally.delivered,
        tally.retrying + tally.dead
    )?;
    sending::aftermath(context, task, &tally, out)?;
    Ok(sending::exit_of(&tally, stop))
}
