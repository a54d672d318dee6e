//! `keyhook resend`: one delivery again, now, by hand: the same id and body.

use std::io::Write;

use anyhow::anyhow;

use super::Context;
use super::sending::{self, Stop};
use crate::cli::ResendArgs;
use crate::delivery::run;
use crate::error::{Error, Result};
use crate::state::StateDb;
use crate::state::deliveries::Queue;

/// The one delivery `id` names: an id, or a prefix that only one id starts with.
fn find(context: &Context, state: &StateDb, id: &str) -> Result<(i64, String)> {
    const SHOWN: usize = 5;
    let mut found = state.find_deliveries(id, SHOWN + 1)?;
    match found.len() {
        0 => Err(Error::config(anyhow!(
            "no delivery `{id}` in {} (see `keyhook log`)",
            context.state_path.display()
        ))),
        1 => {
            let one = found.remove(0);
            Ok((one.seq, one.task))
        }
        n => {
            let more = if n > SHOWN { ", ..." } else { "" };
            let ids: Vec<String> = found.iter().take(SHOWN).map(|f| f.id.clone()).collect();
            Err(Error::config(anyhow!(
                "`{id}` is ambiguous: it starts {} delivery ids ({}{more}); give more of the id",
                if n > SHOWN {
                    format!("more than {SHOWN}")
                } else {
                    n.to_string()
                },
                ids.join(", ")
            )))
        }
    }
}

pub fn run(context: &Context, args: &ResendArgs, out: &mut impl Write) -> Result {
    let state = context.state()?;
    let now = context.clock.now().timestamp();
    let (seq, stem) = find(context, &state, &args.delivery_id)?;
    state.requeue(seq, now)?;
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
                crate::definitions::task::shown_url(&target.url),
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
    )?;
    for line in messages.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    sending::aftermath(context, task, &tally, out)?;
    Ok(sending::exit_of(&tally, &stop))
}
