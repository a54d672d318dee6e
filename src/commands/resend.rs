//! `keyhook resend`: one delivery again, now, by hand: the same id and body.

use std::io::Write;
use std::sync::Mutex;

use anyhow::anyhow;

use super::Context;
use super::sending::{self, Stop};
use super::webhook_sources;
use crate::cli::ResendArgs;
use crate::definitions::task::shown_url;
use crate::delivery::dispatch::Event;
use crate::error::{Error, Result};
use crate::state::State;
use crate::state::deliveries::Queue;

/// The one delivery `id` names: an id, or a prefix that only one id starts with.
fn find(context: &Context, state: &State, id: &str) -> Result<(i64, String)> {
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
    let state = context.open_state()?;
    let now = context.clock.now().timestamp();
    let (seq, stem) = find(context, &state, &args.delivery_id)?;
    if !context.definitions.settings.webhooks_enabled {
        return Err(Error::config(anyhow!(
            "webhooks_enabled = false in {}: nothing is sent, not even by hand; set it to true \
             to resend",
            crate::definitions::settings::FILE
        )));
    }
    if context.definitions.task_by_stem(&stem).is_none() && state.is_webhook_source(&stem)? {
        return resend_event(context, &state, seq, &stem, out);
    }
    let task = context.definitions.task_by_stem(&stem).ok_or_else(|| {
        Error::config(anyhow!(
            "delivery `{}` belongs to task `{stem}`, which no longer exists",
            args.delivery_id
        ))
    })?;
    let Some(held) = sending::hold(context, &state, task)? else {
        return Err(sending::locked(task));
    };
    // Queued again only once the task's lock is held: not for a task that is gone, nor while
    // another process sends it.
    state.requeue(seq, now)?;
    if !task.webhook.enabled {
        writeln!(
            std::io::stderr(),
            "WARNING: task `{}`: its webhook is disabled ([webhook] enabled = false in {}); this \
             delivery is sent as asked, the others wait",
            task.name,
            task.path.display()
        )?;
    }
    if state.task_state(&stem, now)?.webhook_gone.is_some() {
        // Sent by hand all the same (to try a fixed url, say); the rest still waits.
        writeln!(
            std::io::stderr(),
            "WARNING: task `{}`: webhook DISABLED since its receiver answered 410 Gone; this \
             delivery is sent as asked, the others wait until `keyhook enable {}`",
            task.name,
            super::printable::shell_word(&stem)
        )?;
    }
    let stop = Stop::install();
    let messages = Mutex::new(Vec::new());
    let url = shown_url(&held.target.endpoint.url);
    let observe = |event: &Event| {
        if let Ok(mut messages) = messages.lock() {
            messages.push(message(event, &url));
        }
    };
    let tally = held.send(context, &state, Queue::One(&stem, seq), &stop, &observe)?;
    for line in messages.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    sending::aftermath(context, task, &tally, out)?;
    Ok(sending::exit_of(&tally, &stop))
}

/// An event delivery again, to its webhook URL (`source`), under that source's lock.
fn resend_event(
    context: &Context,
    state: &State,
    seq: i64,
    name: &str,
    out: &mut impl Write,
) -> Result {
    let now = context.clock.now();
    let source = webhook_sources::find(&context.definitions, name, now)
        .map_err(|error| Error::config(anyhow!("{error}")))?
        .ok_or_else(|| {
            Error::config(anyhow!(
                "the delivery belongs to webhook URL `{name}`, which is no longer in the \
                 registry (webhooks/*.toml, [events])"
            ))
        })?;
    let Some(held) = sending::hold_source(context, state, &source.target)? else {
        return Err(Error::locked(anyhow!(
            "webhook URL `{name}` is being sent by another keyhook process; this one did nothing"
        )));
    };
    state.requeue(seq, now.timestamp())?;
    let stop = Stop::install();
    let messages = Mutex::new(Vec::new());
    let url = shown_url(&source.url);
    let observe = |event: &Event| {
        if let Ok(mut messages) = messages.lock() {
            messages.push(message(event, &url));
        }
    };
    let tally = held.send(context, state, Queue::One(name, seq), &stop, &observe)?;
    for line in messages.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    if tally.gone {
        writeln!(
            out,
            "WARNING: {url} answered 410 Gone: webhook URL `{name}` is DISABLED; fix it, then \
             run `keyhook enable {}`",
            super::printable::shell_word(&source.route.webhook)
        )?;
    }
    Ok(sending::exit_of(&tally, &stop))
}

/// What became of the one attempt.
fn message(event: &Event, url: &str) -> String {
    match &event.attempt.error {
        None => format!(
            "delivered {} to {url} (HTTP {})",
            event.delivery.id,
            event.attempt.status.unwrap_or(0)
        ),
        Some(error) => format!(
            "failed {}: {}",
            event.delivery.id,
            super::printable::short(error)
        ),
    }
}
