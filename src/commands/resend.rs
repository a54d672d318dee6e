//! `keyhook resend`: one delivery again, now, by hand: the same id and body.

use std::io::Write;

use anyhow::anyhow;

use super::Context;
use super::sending::{self, Stop};
use crate::cli::ResendArgs;
use crate::delivery::run;
use crate::error::{Error, Result};
use crate::state::deliveries::Queue;

pub fn run(context: &Context, args: &ResendArgs, out: &mut impl Write) -> Result {
    let state = context.state()?;
    let now = context.clock.now().timestamp();
    let Some((seq, stem)) = state
        .requeue(&args.delivery_id, now)
        .map_err(Error::runtime)?
    else {
        return Err(Error::config(anyhow!(
            "no delivery `{}` in {} (see `keyhook log`)",
            args.delivery_id,
            context.state_path.display()
        )));
    };
    let task = context.definitions.task(&stem).ok_or_else(|| {
        Error::config(anyhow!(
            "delivery `{}` belongs to task `{stem}`, which no longer exists",
            args.delivery_id
        ))
    })?;
    let target = sending::target(context, task)?;
    let Some(_lock) = sending::lock(context, &stem)? else {
        return Err(sending::locked(task));
    };
    let stop = Stop::install();
    let messages = std::sync::Mutex::new(Vec::new());
    let observe = |event: &run::Event| {
        let line = match &event.attempt.error {
            None => format!(
                "delivered {} to {} (HTTP {})",
                event.delivery.id,
                target.url,
                event.attempt.status.unwrap_or(0)
            ),
            Some(error) => format!(
                "failed {}: {}",
                event.delivery.id,
                super::printable::short(error)
            ),
        };
        if let Ok(mut messages) = messages.lock() {
            messages.push(line);
        }
    };
    let tally = run::send(
        &state,
        Queue::One(seq),
        &target,
        &context.clock,
        stop.flag(),
        &observe,
    )
    .map_err(Error::runtime)?;
    for line in messages.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    sending::aftermath(context, task, &tally, out)?;
    Ok(sending::exit_of(&tally, &stop))
}
