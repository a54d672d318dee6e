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
    /// One webhook per URL, in event-name order, and every problem found: a problem with the
    /// shared keys (the secret, the retries) holds back every webhook; one of an event (its
    /// name, a URL) holds back that event's webhook, not the others. `path` is `keyhook.toml`.
    pub fn webhooks(
        &self,
        path: &Path,
        catalog: &Catalog,
    ) -> (Vec<EventWebhook>, Vec<QlmEventsError>) {
        let endpoint = match self.endpoint(path) {
            Ok(endpoint) => endpoint,
            Err(problems) => return (Vec::new(), problems),
        };
        let mut webhooks = Vec::new();
        let mut problems = Vec::new();
        for (event, written) in &self.urls {
            let Some(written) = written.as_str() else {
                problems.push(QlmEventsError::NotUrls(event.clone()));
                continue;
            };
            let written = written.to_string();
            let Some(canonical) = names::canonical(event, catalog) else {
                let why = names::resolve(std::slice::from_ref(event), catalog)
                    .err()
                    .map(|error| error.to_string())
                    .unwrap_or_default();
                problems.push(QlmEventsError::UnknownEvent {
                    event: event.clone(),
                    why,
                });
                continue;
            };
            for (index, url) in split_urls(std::slice::from_ref(&written))
                .iter()
                .enumerate()
            {
                if let Err(error) = check_url(url) {
                    problems.push(QlmEventsError::Url {
                        event: event.clone(),
                        error,
                    });
                    continue;
                }
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
        (webhooks, problems)
    }

    /// The shared secret and retry settings, as the keys of a webhook file would give them;
    /// or every problem with them.
    fn endpoint(&self, path: &Path) -> Result<Endpoint, Vec<QlmEventsError>> {
        let mut problems = Vec::new();
        let retry_interval = match &self.retry_interval {
            Some(Interval::Minutes(0)) => {
                problems.push(QlmEventsError::ZeroInterval);
                None
            }
            Some(Interval::Minutes(minutes)) => Some(format!("{minutes}m")),
            Some(Interval::Duration(text)) => Some(text.clone()),
            None => None,
        };
        let empty = self
            .secret_key
            .as_deref()
            .is_some_and(|key| key.trim().is_empty());
        if empty {
            problems.push(QlmEventsError::EmptySecretKey);
        }
        let keys = EndpointKeys {
            secret: self.secret_key.clone(),
            max_retries: self.max_retries,
            retry_interval,
            ..EndpointKeys::default()
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        match Endpoint::from_keys(keys, dir) {
            // An empty key is said as such, not also as a secret that cannot be used.
            Err(errors) => problems.extend(
                errors
                    .into_iter()
                    .map(QlmEventsError::from)
                    .filter(|error| !(empty && about_the_secret(error))),
            ),
            Ok(endpoint) if problems.is_empty() => return Ok(endpoint),
            Ok(_) => {}
        }
        Err(problems)
    }
}

/// Whether `error` is the secret's (or the signing's, which takes the secret).
fn about_the_secret(error: &QlmEventsError) -> bool {
    matches!(
        error,
        QlmEventsError::NoSecretKey
            | QlmEventsError::Endpoint(EndpointError::Secret(_) | EndpointError::Signer(_))
    )
}

/// The webhooks of `[events]` that load, and the problems of those that do not.
pub fn load(
    events: &QlmEvents,
    path: &Path,
    catalog: &Catalog,
) -> (Vec<EventWebhook>, Vec<Problem>) {
    let (webhooks, errors) = events.webhooks(path, catalog);
    let problems = errors
        .into_iter()
        .map(|error| Problem {
            file: path.to_path_buf(),
            message: error.to_string(),
        })
        .collect();
    (webhooks, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<EventWebhook>, String> {
        toml::from_str::<QlmEvents>(text).map_err(|e| e.to_string())?;
        let (webhooks, problems) = parse_all(text);
        match problems.is_empty() {
            true => Ok(webhooks),
            false => Err(problems.join("\n")),
        }
    }

    /// The webhooks that load, and every problem said.
    fn parse_all(text: &str) -> (Vec<EventWebhook>, Vec<String>) {
        let events: QlmEvents = toml::from_str(text).unwrap();
        let (webhooks, problems) =
            events.webhooks(Path::new("/etc/keyhook/keyhook.toml"), &Catalog::builtin());
        (webhooks, problems.iter().map(ToString::to_string).collect())
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

    #[test]
    fn every_problem_is_said_and_a_bad_event_holds_back_no_other() {
        // One event misspelt, one URL of another bad: the rest load.
        let (webhooks, problems) = parse_all(
            "webHookSecretKey = \"s\"\nlicense_activate = \"https://a/x\"\n\
             license_created = \"https://a/c;ftp://b/c\"\nlicense_deleted = \"https://a/d\"\n",
        );
        let names: Vec<&str> = webhooks.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["qlm:license_created:1", "qlm:license_deleted:1"]);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].contains("field `license_activate`"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("field `license_created`"),
            "{problems:?}"
        );
        // The shared keys hold back every webhook, and each of their problems is said.
        let (webhooks, problems) =
            parse_all("webHookRetryInterval = 0\nlicense_created = \"https://a/c\"\n");
        assert!(webhooks.is_empty());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("0 minutes is no wait"), "{problems:?}");
        assert!(
            problems[1].contains("set `webHookSecretKey`"),
            "{problems:?}"
        );
    }
}
