//! The webhooks dispatch sends to, as sources for the delivery engine: routes (which source
//! wants which event types), targets (endpoint, signer, policy) and bodies.
//!
//! INTERIM, to be replaced when the registry branch lands: `webhooks/*.toml` is read here
//! with a minimal subset of the registry's keys (same names), and [`body`] is a minimal
//! builder; the registry's `definitions.webhooks` and `events::payload::body` replace both.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use crate::definitions::retry::{RetryFields, ScheduleField, policy};
use crate::definitions::{Settings, read_toml};
use crate::delivery::signature::{Scheme, Signer};
use crate::delivery::target::{Endpoint, Target};
use crate::events::catalog::Catalog;
use crate::events::dispatch::Route;
use crate::events::outbox::OutboxRow;
use crate::secret::Secret;

/// A webhook file, as far as dispatch needs it (INTERIM: the registry's `EventWebhook`).
#[derive(Debug, Deserialize)]
pub struct Webhook {
    pub name: String,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    urls: Vec<String>,
    events: Vec<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    format: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    secret: String,
    #[serde(default)]
    signature: Option<SchemeField>,
    #[serde(default)]
    max_retries: Option<u32>,
    #[serde(default)]
    retry_schedule: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum SchemeField {
    One(Scheme),
    Many(Vec<Scheme>),
}

fn yes() -> bool {
    true
}

/// One URL of one webhook: a route for dispatch and a target for the engine.
pub struct Source {
    pub route: Route,
    pub url: String,
    /// `standard` or `qlm`.
    pub standard: bool,
    pub target: Target,
}

/// The active webhooks of `environment` in `dir/webhooks/`, one source per URL.
pub fn load(
    dir: &Path,
    environment: &str,
    catalog: &Catalog,
    settings: &Settings,
) -> Result<Vec<Source>, String> {
    let Ok(entries) = std::fs::read_dir(dir.join("webhooks")) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut sources = Vec::new();
    for path in paths {
        let webhook: Webhook = read_toml(&path).map_err(|problem| problem.to_string())?;
        let wanted = webhook.environment.as_deref().unwrap_or("production");
        if webhook.enabled && wanted == environment {
            sources.extend(
                sources_of(&webhook, catalog, settings)
                    .map_err(|error| format!("{}: {error}", path.display()))?,
            );
        }
    }
    Ok(sources)
}

fn sources_of(
    webhook: &Webhook,
    catalog: &Catalog,
    settings: &Settings,
) -> Result<Vec<Source>, String> {
    let mut urls: Vec<String> = webhook
        .url
        .iter()
        .flat_map(|url| url.split(';'))
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(String::from)
        .collect();
    urls.extend(webhook.urls.iter().cloned());
    let events = resolve(&webhook.events, catalog)?;
    let mut sources = Vec::new();
    for (index, url) in urls.into_iter().enumerate() {
        let source = match index {
            0 => webhook.name.clone(),
            n => format!("{}#{}", webhook.name, n + 1),
        };
        let target = target(webhook, &source, &url, settings)?;
        sources.push(Source {
            route: Route {
                source,
                webhook: webhook.name.clone(),
                events: events.clone(),
            },
            url,
            standard: webhook.format.as_deref() == Some("standard"),
            target,
        });
    }
    Ok(sources)
}

/// Canonical event names for what a webhook subscribes to: any name style, `family.*`.
fn resolve(wanted: &[String], catalog: &Catalog) -> Result<BTreeSet<String>, String> {
    let mut events = BTreeSet::new();
    for name in wanted {
        let before = events.len();
        for (_, event) in catalog.events() {
            let family = name.strip_suffix('*');
            let matches = match family {
                Some(prefix) => event.names().iter().any(|n| n.starts_with(prefix)),
                None => event.names().iter().any(|n| n == name),
            };
            if matches {
                events.insert(event.name.clone());
            }
        }
        if events.len() == before && !name.ends_with('*') {
            return Err(format!("field `events`: no event type is called `{name}`"));
        }
    }
    Ok(events)
}

fn target(
    webhook: &Webhook,
    source: &str,
    url: &str,
    settings: &Settings,
) -> Result<Target, String> {
    let schemes = match &webhook.signature {
        None => vec![Scheme::Qlm],
        Some(SchemeField::One(scheme)) => vec![*scheme],
        Some(SchemeField::Many(schemes)) => schemes.clone(),
    };
    let signer = Signer::new(&schemes, &[Secret::new(webhook.secret.clone())])?;
    let retry = RetryFields {
        max_retries: webhook.max_retries,
        retry_schedule: webhook.retry_schedule.clone().map(ScheduleField::Waits),
        ..RetryFields::default()
    };
    Ok(Target {
        source: source.to_string(),
        endpoint: Endpoint {
            url: url.to_string(),
            timeout: Duration::from_secs(30),
            tls: settings.tls.load()?,
        },
        signer,
        policy: policy(&retry, &settings.retry)?,
        concurrency: webhook.concurrency.unwrap_or(1).max(1),
    })
}

/// INTERIM body builder (the registry's `events::payload::body` replaces it): QLM's shape
/// `{"EventType": ..., "Data": snapshot}`, or Standard Webhooks' `{type, timestamp, data}`.
pub fn body(source: &Source, catalog: &Catalog, row: &OutboxRow) -> Vec<u8> {
    let data: serde_json::Value =
        serde_json::from_str(&row.snapshot).unwrap_or(serde_json::Value::Null);
    let json = if source.standard {
        let at = chrono::DateTime::from_timestamp_millis(row.created_ms).unwrap_or_default();
        let timestamp = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        serde_json::json!({"type": row.event_type, "timestamp": timestamp, "data": data})
    } else {
        let qlm = catalog
            .find(&row.event_type)
            .map_or_else(|| row.event_type.replace('.', "_"), |(_, e)| e.qlm_name());
        serde_json::json!({"EventType": qlm, "Data": data})
    };
    json.to_string().into_bytes()
}
