//! The registry's webhooks as sources for the delivery engine: one source per (webhook, URL),
//! each with its route (which event types it wants), its target (endpoint, signer, policy)
//! and its body format.

use std::path::PathBuf;

use crate::definitions::Definitions;
use crate::definitions::endpoint::EndpointError;
use crate::definitions::registry::{Environment, EventWebhook, Format};
use crate::definitions::url::shown_url;
use crate::delivery::target::{Endpoint, Target};
use crate::events::catalog::Catalog;
use crate::events::dispatch::BodyError;
use crate::events::dispatch::Route;
use crate::events::outbox::OutboxRow;
use crate::events::payload::{self, EventBody};
use crate::licenses::snapshot::Snapshot;
use crate::state::sources::SourceSummary;

/// One URL of one webhook: a route for dispatch and a target for the engine.
pub struct Source {
    pub route: Route,
    pub url: String,
    pub format: Format,
    pub target: Target,
}

/// A webhook whose secret, signer, retry policy or TLS files cannot be resolved, and its file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {error}", .path.display())]
pub struct SourceError {
    pub path: PathBuf,
    pub error: EndpointError,
}

/// The active webhooks of `environment`, one source per URL; nothing when the global
/// `webhooks_enabled = false`. A webhook whose secret or TLS files cannot be resolved is an
/// error naming its file (`check` reports the same).
pub fn load(
    definitions: &Definitions,
    environment: Environment,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Source>, SourceError> {
    if !definitions.settings.webhooks_enabled {
        return Ok(Vec::new());
    }
    let mut sources = Vec::new();
    for webhook in &definitions.webhooks {
        if !webhook.enabled || webhook.environment != environment {
            continue;
        }
        sources.extend(
            sources_of(webhook, definitions, now).map_err(|error| SourceError {
                path: webhook.path.clone(),
                error,
            })?,
        );
    }
    Ok(sources)
}

/// The source called `name` among every webhook of the registry (whatever its environment or
/// status: `resend` is by hand), its secret and TLS files resolved; `None` if no URL has it.
pub fn find(
    definitions: &Definitions,
    name: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Option<Source>, SourceError> {
    for webhook in &definitions.webhooks {
        let Some(index) = (0..webhook.urls.len()).find(|i| source_name(webhook, *i) == name) else {
            continue;
        };
        let sources = sources_of(webhook, definitions, now).map_err(|error| SourceError {
            path: webhook.path.clone(),
            error,
        })?;
        return Ok(sources.into_iter().nth(index));
    }
    Ok(None)
}

/// The delivery source of a webhook's `index`th URL: its name, then `name#2`, `name#3`...
/// The sources in the state whose deliveries wait (pending or failed) but that nothing will
/// send to the URL they were for: no webhook file defines them any more (a webhook renamed or
/// removed, a URL taken from its list), or the webhook's URLs [`moved`] in its list. `status`
/// and `run-due` say so, and `prune --removed-webhooks` gives them up.
pub fn stranded<'s>(
    definitions: &Definitions,
    summaries: &'s [SourceSummary],
) -> Vec<&'s SourceSummary> {
    summaries
        .iter()
        .filter(|summary| summary.pending + summary.failed > 0)
        .filter(|summary| match defined_url(definitions, summary) {
            None => true,
            Some((webhook, url)) => {
                let urls: Vec<(String, String)> = summaries
                    .iter()
                    .filter(|other| other.webhook == summary.webhook)
                    .map(|other| (other.source.clone(), other.url.clone()))
                    .collect();
                moved(webhook, &summary.source, url, &urls).is_some()
            }
        })
        .collect()
}

/// The webhook that defines `summary`'s source, and the URL it gives it now.
pub fn defined_url<'d>(
    definitions: &'d Definitions,
    summary: &SourceSummary,
) -> Option<(&'d EventWebhook, &'d str)> {
    definitions.webhooks.iter().find_map(|webhook| {
        let index =
            (0..webhook.urls.len()).find(|&index| source_name(webhook, index) == summary.source)?;
        Some((webhook, webhook.urls[index].as_str()))
    })
}

/// The URL `source` (one place in `webhook`'s list) was last sent to, when its deliveries
/// must not go to `url`, what the place holds now: the webhook's URLs moved in its list, so
/// `url` is one another of its sources was sent to, or the URL the source was sent to is now
/// at another place. (A URL edited in place is followed: the receiver moved.) `urls` are the
/// webhook's sources and the URLs they were last sent to, as the state keeps them (shown).
pub fn moved(
    webhook: &EventWebhook,
    source: &str,
    url: &str,
    urls: &[(String, String)],
) -> Option<String> {
    let now = shown_url(url);
    let was = &urls.iter().find(|(known, _)| known == source)?.1;
    if *was == now {
        return None;
    }
    let elsewhere =
        webhook.urls.iter().enumerate().any(|(index, other)| {
            shown_url(other) == *was && source_name(webhook, index) != source
        });
    let taken = urls
        .iter()
        .any(|(other, other_url)| other != source && *other_url == now);
    (elsewhere || taken).then(|| was.clone())
}

/// What `status` and `run-due` say of a [`stranded`] source; while a webhook definition has
/// problems (and so is not read) it may be the one that defines it, and that is said first.
pub fn stranded_words(definitions: &Definitions, summary: &SourceSummary) -> String {
    let waiting = summary.pending + summary.failed;
    let (source, webhook) = (&summary.source, &summary.webhook);
    if let Some((_, url)) = defined_url(definitions, summary) {
        return moved_words(source, &summary.url, url);
    }
    match definitions.webhook_problems().is_empty() {
        true => format!(
            "{source}: {waiting} deliveries wait, but no webhook file defines this URL of \
             webhook `{webhook}` any more (renamed, removed, or a URL taken from its list); \
             nothing sends them: restore it, or give them up with `keyhook prune \
             --removed-webhooks`"
        ),
        false => format!(
            "{source}: {waiting} deliveries wait, but no webhook file that can be read defines \
             this URL of webhook `{webhook}`: a webhook definition has problems (`keyhook \
             check` names them), and it may be the one; fix it and they are sent"
        ),
    }
}

/// What is said of a source whose URLs [`moved`]: its deliveries are held.
pub fn moved_words(source: &str, was: &str, url: &str) -> String {
    format!(
        "{source}: deliveries wait for {was}, but this place in the webhook's URL \
         list now holds {}, which another of its places was sent to (its URLs moved in the \
         list); they are held, so none goes to a receiver it was not for: put the URLs back in \
         their order, or give them up with `keyhook prune --removed-webhooks`",
        shown_url(url)
    )
}

pub fn source_name(webhook: &EventWebhook, index: usize) -> String {
    match index {
        0 => webhook.name.clone(),
        n => format!("{}#{}", webhook.name, n + 1),
    }
}

pub fn sources_of(
    webhook: &EventWebhook,
    definitions: &Definitions,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Source>, EndpointError> {
    let events: std::collections::BTreeSet<String> = webhook.events.iter().cloned().collect();
    let mut sources = Vec::new();
    for (index, url) in webhook.urls.iter().enumerate() {
        let resolved = webhook.endpoint.resolve(&definitions.settings, now)?;
        let source = source_name(webhook, index);
        sources.push(Source {
            route: Route {
                source: source.clone(),
                webhook: webhook.name.clone(),
                events: events.clone(),
            },
            url: url.clone(),
            format: webhook.format,
            target: Target {
                source,
                endpoint: Endpoint {
                    url: url.clone(),
                    timeout: resolved.timeout,
                    tls: resolved.tls,
                },
                signer: resolved.signer,
                policy: resolved.policy,
                concurrency: webhook.concurrency.unwrap_or(1),
            },
        });
    }
    Ok(sources)
}

/// The exact bytes a source is sent for an outbox row (its snapshot already read), in the
/// source's format; or why the row's snapshot cannot be sent as its kind (a bad value in a
/// column, as a bad license row).
pub fn body(
    source: &Source,
    catalog: &Catalog,
    row: &OutboxRow,
    snapshot: &Snapshot,
) -> Result<Vec<u8>, BodyError> {
    let event = EventBody {
        event_type: &row.event_type,
        created_ms: row.created_ms,
        snapshot: &row.snapshot,
        test: false,
    };
    Ok(payload::body_of(source.format, &event, snapshot, catalog)?)
}
