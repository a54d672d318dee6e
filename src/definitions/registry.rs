//! The webhook registry: `webhooks/<stem>.toml`, one named webhook each, subscribed to event
//! types and bound to an environment. QLM's `[events]` shape in `keyhook.toml`
//! ([`super::qlm_events`]) becomes webhooks of the same type, so dispatch sees one list.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::endpoint::{Endpoint, with_endpoint_keys};
use super::task::check_concurrency;
use super::url::{UrlError, check_url, shown_url};
use super::{Fields, Problem, read_toml_partly, stem};
use crate::events::catalog::Catalog;
use crate::events::names;

/// Which deployment a webhook belongs to; a runner sends only to its own environment's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    #[default]
    Production,
    Staging,
    Development,
}

/// The shape of the request body (see [`crate::events::payload`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// `{"EventType": "license_activated", "LicenseInfo": {...}}`, as QLM sends.
    #[default]
    Qlm,
    /// `{"type": "license.activated", "timestamp": "...", "data": {...}}` (Standard Webhooks).
    Standard,
}

with_endpoint_keys! {
    /// The TOML form of a webhook.
    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct WebhookFile {
        /// Shown in lists and logs; unique among webhooks.
        name: String,
        /// One address, or several separated by `;` (QLM's way).
        #[serde(default)]
        url: Option<String>,
        /// Several addresses; each gets its own delivery of every event.
        #[serde(default)]
        urls: Option<Vec<String>>,
        /// Event types, in either naming style or by alias; `license.*` for a family.
        events: Vec<String>,
        /// production (default), staging or development.
        #[serde(default)]
        environment: Option<String>,
        /// An inactive webhook is listed but never sent to.
        #[serde(default = "yes")]
        enabled: bool,
        /// What it is for, for people.
        #[serde(default)]
        description: Option<String>,
        /// "qlm" (default) or "standard": the body's shape.
        #[serde(default)]
        format: Format,
        /// Requests in flight at once (1 to 256; default 1).
        #[serde(default)]
        concurrency: Option<usize>,
    }
}

fn yes() -> bool {
    true
}

/// A validated webhook.
#[derive(Debug, Clone)]
pub struct EventWebhook {
    /// The file stem, or `qlm:<event>:<n>` for QLM's shape: what commands take.
    pub stem: String,
    /// The file it was read from.
    pub path: PathBuf,
    pub name: String,
    /// One delivery per URL for every event.
    pub urls: Vec<String>,
    /// Canonical dotted event names, in catalog order.
    pub events: Vec<String>,
    pub environment: Environment,
    pub enabled: bool,
    pub description: Option<String>,
    pub format: Format,
    pub concurrency: Option<usize>,
    /// Secret, signature schemes, timeout, retry keys, TLS files.
    pub endpoint: Endpoint,
}

impl EventWebhook {
    /// Loads and validates one webhook file; its event names against `catalog`.
    /// Every field's problem, not only the first.
    pub fn load(path: &Path, catalog: &Catalog) -> Result<EventWebhook, Vec<Problem>> {
        let (mut file, problems): (WebhookFile, _) = read_toml_partly(path)?;
        let mut fields = Fields::new(path);
        fields.problems = problems;
        if file.name.trim().is_empty() {
            fields.say("field `name` is empty".into());
        } else if file.name.contains('#') {
            fields.say(format!(
                "field `name`: `{}` holds a `#`, which keyhook keeps for a webhook's further \
                 URLs (`name#2`, `name#3`, ...); choose a name without one",
                file.name
            ));
        }
        let urls = fields.take(urls(file.url.take(), file.urls.take()), |error| {
            error.to_string()
        });
        let events = fields.take(names::resolve(&file.events, catalog), |error| {
            format!("field `events`: {error}")
        });
        let environment = match &file.environment {
            Some(text) => fields.take(Environment::parse(text), |error| {
                format!("field `environment`: {error}")
            }),
            None => Some(Environment::default()),
        };
        if let Some(concurrency) = file.concurrency {
            fields.take(check_concurrency(concurrency), |error| {
                format!("field `concurrency`: {error}")
            });
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let endpoint = fields.take_each(
            Endpoint::from_keys(file.take_endpoint_keys(), dir),
            |error| error.to_string(),
        );
        let (Some(urls), Some(events), Some(environment), Some(endpoint)) =
            (urls, events, environment, endpoint)
        else {
            return Err(fields.problems);
        };
        if !fields.problems.is_empty() {
            return Err(fields.problems);
        }
        Ok(EventWebhook {
            stem: stem(path),
            path: path.to_path_buf(),
            name: file.name,
            urls,
            events,
            environment,
            enabled: file.enabled,
            description: file.description,
            format: file.format,
            concurrency: file.concurrency,
            endpoint,
        })
    }

    /// Whether it fires for `event` (canonical) in `environment`: active, subscribed, there.
    pub fn fires_for(&self, event: &str, environment: Environment) -> bool {
        self.enabled && self.environment == environment && self.events.iter().any(|e| e == event)
    }
}

/// Why a webhook file's addresses were rejected; `field` is `url` or `urls`.
#[derive(Debug, thiserror::Error)]
pub enum AddressError {
    #[error("set `url` or `urls`, not both")]
    UrlAndUrls,
    #[error("no address: set `url` (or `urls`)")]
    NoAddress,
    #[error("field `{field}`: no address in it")]
    Empty { field: &'static str },
    #[error("field `{field}`: {error}")]
    Url {
        field: &'static str,
        error: UrlError,
    },
    /// `shown` is the URL with its password masked.
    #[error("field `{field}`: `{shown}` is there twice")]
    Twice { field: &'static str, shown: String },
}

/// `url` (perhaps `;`-separated) or `urls`, each checked; at least one, none twice.
fn urls(url: Option<String>, list: Option<Vec<String>>) -> Result<Vec<String>, AddressError> {
    let (field, written) = match (url, list) {
        (Some(url), None) => ("url", vec![url]),
        (None, Some(list)) => ("urls", list),
        (Some(_), Some(_)) => return Err(AddressError::UrlAndUrls),
        (None, None) => return Err(AddressError::NoAddress),
    };
    let urls = split_urls(&written);
    if urls.is_empty() {
        return Err(AddressError::Empty { field });
    }
    for (index, url) in urls.iter().enumerate() {
        check_url(url).map_err(|error| AddressError::Url { field, error })?;
        if urls[..index].contains(url) {
            let shown = shown_url(url);
            return Err(AddressError::Twice { field, shown });
        }
    }
    Ok(urls)
}

/// Addresses as QLM writes them: `;`-separated, blanks around them and empty ones ignored.
pub fn split_urls(written: &[String]) -> Vec<String> {
    written
        .iter()
        .flat_map(|text| text.split(';'))
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect()
}

/// An environment name that is none of [`Environment::ALL`], as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an environment: production, staging or development")]
pub struct UnknownEnvironment(pub String);

impl Environment {
    pub const ALL: [Environment; 3] = [
        Environment::Production,
        Environment::Staging,
        Environment::Development,
    ];

    /// `production`, `staging` or `development`, in any case.
    pub fn parse(text: &str) -> Result<Environment, UnknownEnvironment> {
        Environment::ALL
            .into_iter()
            .find(|environment| environment.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownEnvironment(text.to_string()))
    }

    pub fn name(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Development => "development",
        }
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
