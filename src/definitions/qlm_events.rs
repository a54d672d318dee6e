//! QLM's own shape for event webhooks, in `keyhook.toml`: an `[events]` table with one
//! `;`-separated URL string per QLM event name and QLM's four settings under their own names.
//! Each URL becomes one [`EventWebhook`] named `qlm:<event>:<n>`, so dispatch sees one list.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::Problem;
use super::endpoint::{Endpoint, EndpointError, EndpointKeys};
use super::registry::{EventWebhook, Format, split_urls};
use super::retry::RetryError;
use super::secret::SecretError;
use super::settings::DurationError;
use super::url::{UrlError, check_url};
use crate::events::catalog::Catalog;
use crate::events::names;

/// The `[events]` table as written.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct QlmEvents {
    /// Retries after the first attempt.
    #[serde(rename = "webHookMaxRetries", default)]
    pub max_retries: Option<u32>,
    /// The wait between attempts: a duration ("10m"), or a whole number of minutes.
    #[serde(rename = "webHookRetryInterval", default)]
    pub retry_interval: Option<Interval>,
    /// The secret key every one of these webhooks signs with (`X-QLM-Signature`).
    #[serde(rename = "webHookSecretKey", default)]
    pub secret_key: Option<String>,
    /// false: these webhooks are listed as inactive and never sent to.
    #[serde(rename = "webHooksEnabled", default)]
    pub enabled: Option<bool>,
    /// QLM event name (`license_activated`) → `;`-separated URLs: text, checked on use so
    /// that a value of another type is named by its key (a misspelt setting lands here).
    #[serde(flatten)]
    pub urls: BTreeMap<String, toml::Value>,
}

/// `webHookRetryInterval`: QLM's settings page takes a number; keyhook also takes "10m".
#[derive(Debug, Clone, Deserialize)]
#[serde(
    untagged,
    expecting = "a whole number of minutes, or a duration such as \"10m\""
)]
pub enum Interval {
    Minutes(u32),
    Duration(String),
}

/// Why the `[events]` table was rejected, in QLM's names for its keys.
#[derive(Debug, thiserror::Error)]
pub enum QlmEventsError {
    #[error(
        "[events] field `webHookRetryInterval`: 0 minutes is no wait; give at least 1 (minutes) \
         or a duration such as \"10m\""
    )]
    ZeroInterval,
    #[error(
        "[events] field `{0}`: is not text, so not a `;`-separated list of URLs (the settings \
         keys are webHooksEnabled, webHookSecretKey, webHookMaxRetries and \
         webHookRetryInterval; every other key names an event)"
    )]
    NotUrls(String),
    #[error(
        "[events]: no secret: set `webHookSecretKey` (keyhook never sends an unsigned request)"
    )]
    NoSecretKey,
    #[error(
        "[events] field `webHookSecretKey`: is empty (keyhook never sends an unsigned request)"
    )]
    EmptySecretKey,
    #[error("[events]: field `webHookRetryInterval`: {0}")]
    RetryInterval(DurationError),
    #[error("[events]: {0}")]
    Endpoint(EndpointError),
    /// `why` is the event catalog's explanation (with its suggestion).
    #[error("[events] field `{event}`: {why}")]
    UnknownEvent { event: String, why: String },
    #[error("[events] field `{event}`: {error}")]
    Url { event: String, error: UrlError },
}

impl From<EndpointError> for QlmEventsError {
    /// The shared keys' errors, named as QLM names the keys.
    fn from(error: EndpointError) -> QlmEventsError {
        match error {
            EndpointError::Secret(SecretError::NoSource) => QlmEventsError::NoSecretKey,
            EndpointError::Retry(RetryError::Interval(error)) => {
                QlmEventsError::RetryInterval(error)
            }
            other => QlmEventsError::Endpoint(other),
        }
    }
}

impl QlmEvents {
    /// One webhook per URL, in event-name order; `path` is `keyhook.toml`.
    pub fn webhooks(
        &self,
        path: &Path,
        catalog: &Catalog,
    ) -> Result<Vec<EventWebhook>, QlmEventsError> {
        let endpoint = self.endpoint(path)?;
        let mut webhooks = Vec::new();
        for (event, written) in &self.urls {
            let Some(written) = written.as_str() else {
                return Err(QlmEventsError::NotUrls(event.clone()));
            };
            let written = written.to_string();
            let canonical = names::canonical(event, catalog).ok_or_else(|| {
                let why = names::resolve(std::slice::from_ref(event), catalog)
                    .err()
                    .map(|error| error.to_string())
                    .unwrap_or_default();
                QlmEventsError::UnknownEvent {
                    event: event.clone(),
                    why,
                }
            })?;
            for (index, url) in split_urls(std::slice::from_ref(&written))
                .iter()
                .enumerate()
            {
                check_url(url).map_err(|error| QlmEventsError::Url {
                    event: event.clone(),
                    error,
                })?;
                let name = format!("qlm:{event}:{}", index + 1);
                webhooks.push(EventWebhook {
                    stem: name.clone(),
                    path: path.to_path_buf(),
                    name,
                    urls: vec![url.clone()],
                    events: vec![canonical.clone()],
                    environment: Default::default(),
                    enabled: self.enabled.unwrap_or(true),
                    description: Some(format!("QLM's {event} webhook in keyhook.toml")),
                    format: Format::Qlm,
                    concurrency: None,
                    endpoint: endpoint.clone(),
                });
            }
        }
        Ok(webhooks)
    }

    /// The shared secret and retry settings, as the keys of a webhook file would give them.
    fn endpoint(&self, path: &Path) -> Result<Endpoint, QlmEventsError> {
        let retry_interval = match &self.retry_interval {
            Some(Interval::Minutes(0)) => return Err(QlmEventsError::ZeroInterval),
            Some(Interval::Minutes(minutes)) => Some(format!("{minutes}m")),
            Some(Interval::Duration(text)) => Some(text.clone()),
            None => None,
        };
        if self
            .secret_key
            .as_deref()
            .is_some_and(|key| key.trim().is_empty())
        {
            return Err(QlmEventsError::EmptySecretKey);
        }
        let keys = EndpointKeys {
            secret: self.secret_key.clone(),
            max_retries: self.max_retries,
            retry_interval,
            ..EndpointKeys::default()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        // The first problem only: a missing secret key can hide a bad retry interval.
        Endpoint::from_keys(keys, dir).map_err(|mut errors| errors.remove(0).into())
    }
}

/// The webhooks of `[events]`, or the problem that keeps them from loading.
pub fn load(
    events: &QlmEvents,
    path: &Path,
    catalog: &Catalog,
) -> Result<Vec<EventWebhook>, Problem> {
    events.webhooks(path, catalog).map_err(|error| Problem {
        file: path.to_path_buf(),
        message: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<EventWebhook>, String> {
        let events: QlmEvents = toml::from_str(text).map_err(|e| e.to_string())?;
        events
            .webhooks(Path::new("/etc/keyhook/keyhook.toml"), &Catalog::builtin())
            .map_err(|error| error.to_string())
    }

    #[test]
    fn one_webhook_per_url() {
        let webhooks = parse(
            "webHookSecretKey = \"s\"\nwebHookMaxRetries = 3\nwebHookRetryInterval = 10\n\
             license_activated = \"https://a.example/x; https://b.example/y;\"\n\
             customer_modified = \"https://c.example/z\"\n",
        )
        .unwrap();
        let names: Vec<(&str, &str, &str)> = webhooks
            .iter()
            .map(|w| (w.name.as_str(), w.urls[0].as_str(), w.events[0].as_str()))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "qlm:customer_modified:1",
                    "https://c.example/z",
                    "customer.updated"
                ),
                (
                    "qlm:license_activated:1",
                    "https://a.example/x",
                    "license.activated"
                ),
                (
                    "qlm:license_activated:2",
                    "https://b.example/y",
                    "license.activated"
                ),
            ]
        );
        let retry = &webhooks[0].endpoint.retry;
        assert_eq!(retry.max_retries, Some(3));
        assert_eq!(retry.retry_interval.as_deref(), Some("10m"));
        assert!(
            webhooks
                .iter()
                .all(|w| w.enabled && w.format == Format::Qlm)
        );
    }

    #[test]
    fn mistakes_are_named() {
        let cases = [
            (
                "license_activated = \"https://a/x\"\n",
                "set `webHookSecretKey`",
            ),
            (
                "webHookSecretKey = \"s\"\nlicense_activate = \"https://a/x\"\n",
                "[events] field `license_activate`: `license_activate` is not an event; did you mean `license_activated`",
            ),
            (
                "webHookSecretKey = \"s\"\nlicense_created = \"ftp://a/x\"\n",
                "[events] field `license_created`:",
            ),
            (
                "webHookSecretKey = \"s\"\nwebHookRetryInterval = \"soon\"\n",
                "`webHookRetryInterval`",
            ),
            (
                "webHookSecretKey = \"s\"\nwebhooksenabled = false\n",
                "[events] field `webhooksenabled`: is not text",
            ),
            (
                "webHookSecretKey = \"\"\nlicense_created = \"https://a/x\"\n",
                "[events] field `webHookSecretKey`: is empty",
            ),
            (
                "webHookSecretKey = \"s\"\nwebHookRetryInterval = 0\n",
                "0 minutes is no wait; give at least 1",
            ),
            (
                "webHookSecretKey = \"s\"\nwebHookRetryInterval = -5\n",
                "a whole number of minutes, or a duration such as \"10m\"",
            ),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        let off = parse(
            "webHookSecretKey = \"s\"\nwebHooksEnabled = false\nlicense_created = \"https://a/x\"\n",
        );
        assert!(!off.unwrap()[0].enabled);
    }
}
