//! `keyhook webhooks test <name> [--event TYPE]`: a sample event, marked as a test, sent to
//! each URL of a webhook through the one send path: recorded in the state database like any
//! delivery, signed, with the same headers. One attempt and no retry (a test answers "does it
//! work now"); the response's status and the start of its body are shown.

use std::io::Write;
use std::sync::Mutex;

use anyhow::anyhow;

use super::Context;
use super::printable;
use super::sending::{self, Stop};
use super::webhook_sources::{self, Source};
use crate::cli::WebhooksTestArgs;
use crate::definitions::EventWebhook;
use crate::definitions::task::shown_url;
use crate::delivery::dispatch::Event;
use crate::error::{Error, Exit, Result};
use crate::events::dispatch::delivery_id_of;
use crate::events::payload::{self, EventBody};
use crate::events::{names, sample};
use crate::state::State;
use crate::state::deliveries::Queue;
use crate::state::events::EventDelivery;

/// How much of a response body is shown.
const EXCERPT_CHARS: usize = 300;

pub fn run(context: &Context, args: &WebhooksTestArgs, out: &mut impl Write) -> Result {
    let webhook = super::webhooks::find(context, &args.name)?;
    context.ensure_valid(&webhook.path)?;
    let event_type = event_of(context, webhook, args.event.as_deref())?;
    let now = context.clock.now();
    let mut sources = webhook_sources::sources_of(webhook, &context.definitions, now)
        .map_err(|error| Error::config(anyhow!("{}: {error}", webhook.path.display())))?;
    for source in &mut sources {
        // One attempt: a test is not queued for retries.
        source.target.policy.max_retries = 0;
        source.target.concurrency = 1;
    }
    if !webhook.enabled {
        writeln!(
            out,
            "note: `{}` is inactive; testing it anyway",
            webhook.name
        )?;
    }
    let mut state = context.open_state()?;
    let seqs = record(context, &mut state, &sources, &event_type)?;
    let stop = Stop::install();
    let mut exit = Exit::Success;
    for (source, seq) in sources.iter().zip(seqs) {
        exit = exit.worst(send_one(context, &state, source, seq, &stop, out)?);
    }
    Ok(exit.worst(stop.exit().unwrap_or(Exit::Success)))
}

/// The event to send: `--event` in either style, else the first the webhook subscribes to.
fn event_of(context: &Context, webhook: &EventWebhook, asked: Option<&str>) -> Result<String> {
    let catalog = &context.definitions.catalog;
    let Some(asked) = asked else {
        return webhook.events.first().cloned().ok_or_else(|| {
            Error::config(anyhow!("webhook `{}` subscribes to no event", webhook.name))
        });
    };
    names::canonical(asked, catalog).ok_or_else(|| {
        Error::config(anyhow!(
            "--event: `{asked}` is not an event (see `keyhook events catalog`)"
        ))
    })
}

/// Records one test delivery per source, all sharing one event key; their sequence numbers.
fn record(
    context: &Context,
    state: &mut State,
    sources: &[Source],
    event_type: &str,
) -> Result<Vec<i64>> {
    let catalog = &context.definitions.catalog;
    let now = context.clock.now();
    let snapshot = sample::snapshot(event_type, catalog);
    let event = EventBody {
        event_type,
        created_ms: now.timestamp_millis(),
        snapshot: &snapshot,
        test: true,
    };
    let event_key = format!("evt_test_{}", &crate::delivery::id::new()[4..]);
    let subject: serde_json::Value = serde_json::from_str(&snapshot).unwrap_or_default();
    let mut deliveries = Vec::new();
    for source in sources {
        let body = payload::body(source.format, &event, catalog)
            .map_err(|error| Error::runtime(anyhow!("the sample event: {error}")))?;
        deliveries.push(EventDelivery {
            id: delivery_id_of(&event_key, &source.route.source),
            source: source.route.source.clone(),
            event_type: event_type.to_string(),
            event_key: event_key.clone(),
            order_key: None,
            license_id: subject["ID"].as_i64().unwrap_or_default(),
            activation_key: subject["ActivationKey"].as_str().unwrap_or("").to_string(),
            body,
        });
    }
    for source in sources {
        let route = &source.route;
        state.see_source(&route.source, &route.webhook, &source.url, now.timestamp())?;
    }
    Ok(state.record_deliveries(&deliveries, now.timestamp())?)
}

/// Sends one recorded test delivery under its source's lock and says what came back.
fn send_one(
    context: &Context,
    state: &State,
    source: &Source,
    seq: i64,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Exit> {
    let url = shown_url(&source.url);
    let Some(held) = sending::hold_source(context, state, &source.target)? else {
        writeln!(
            out,
            "{url}: another keyhook process is sending to it; try again"
        )?;
        return Ok(Exit::Locked);
    };
    let lines = Mutex::new(Vec::new());
    let observe = |event: &Event| {
        if let Ok(mut lines) = lines.lock() {
            lines.extend(describe(event, &url));
        }
    };
    let tally = held.send(
        context,
        state,
        Queue::One(&source.target.source, seq),
        stop,
        &observe,
    )?;
    for line in lines.into_inner().unwrap_or_default() {
        writeln!(out, "{line}")?;
    }
    Ok(match tally.delivered {
        1 => Exit::Success,
        _ => Exit::DeliveryFailed,
    })
}

/// The attempt in words: where, the delivery id, the status, and the response's start.
fn describe(event: &Event, url: &str) -> Vec<String> {
    let attempt = event.attempt;
    let outcome = match (&attempt.error, attempt.status) {
        (None, Some(status)) => format!("HTTP {status}: delivered"),
        (Some(error), _) => format!("failed: {}", printable::short(error)),
        (None, None) => "no response".to_string(),
    };
    let mut lines = vec![format!(
        "test {} to {url} ({}, {} ms): {outcome}",
        event.delivery.event_type.as_deref().unwrap_or("event"),
        event.delivery.id,
        attempt.duration.as_millis()
    )];
    if !attempt.excerpt.is_empty() {
        lines.push(format!(
            "  response: {}",
            printable::line(&attempt.excerpt, EXCERPT_CHARS)
        ));
    }
    lines
}
