//! `keyhook webhooks list`: the registry, one line (or JSON object) per webhook.

use std::io::Write;

use anyhow::anyhow;
use comfy_table::{Table, presets};
use serde_json::json;

use super::sending::local_time;
use super::webhook_sources::source_name;
use super::{Context, success};
use crate::cli::{StatusArg, WebhooksListArgs};
use crate::definitions::EventWebhook;
use crate::definitions::task::shown_url;
use crate::error::{Error, Result};
use crate::state::sources::SourceSummary;

pub fn list(context: &Context, args: &WebhooksListArgs, out: &mut impl Write) -> Result {
    let webhooks = selected(context, args);
    let history = History::read(context)?;
    if args.json {
        let list: Vec<serde_json::Value> = webhooks
            .iter()
            .map(|w| as_json(w, &history.of(w), refused(context, w)))
            .collect();
        writeln!(out, "{}", serde_json::Value::Array(list))?;
        return success();
    }
    if webhooks.is_empty() {
        writeln!(out, "no webhooks{}", filters_said(context, args))?;
    } else {
        let mut table = Table::new();
        table.load_preset(presets::NOTHING);
        table.set_header([
            "NAME",
            "URL",
            "ENVIRONMENT",
            "EVENTS",
            "STATUS",
            "LAST DELIVERY",
            "FAILURES",
        ]);
        for webhook in &webhooks {
            table.add_row(row(context, webhook, &history.of(webhook)));
        }
        writeln!(out, "{table}")?;
    }
    if !context.definitions.problems.is_empty() {
        writeln!(
            out,
            "{} definition file(s) have problems; run `keyhook check` to see them.",
            context.definitions.files_with_problems()
        )?;
    }
    success()
}

/// The webhooks the filters keep: `--environment` (or `KEYHOOK_ENVIRONMENT`), `--status`,
/// `--search` over name, file stem and URLs.
fn selected<'a>(context: &'a Context, args: &WebhooksListArgs) -> Vec<&'a EventWebhook> {
    let search = args.search.as_deref().map(str::to_lowercase);
    context
        .definitions
        .webhooks
        .iter()
        .filter(|w| context.environment.is_none_or(|e| w.environment == e))
        .filter(|w| match args.status {
            Some(StatusArg::Active) => w.enabled,
            Some(StatusArg::Inactive) => !w.enabled,
            None => true,
        })
        .filter(|w| {
            search.as_deref().is_none_or(|text| {
                [&w.name, &w.stem]
                    .into_iter()
                    .chain(&w.urls)
                    .any(|field| field.to_lowercase().contains(text))
            })
        })
        .collect()
}

fn row(context: &Context, webhook: &EventWebhook, seen: &Seen) -> Vec<String> {
    let mut urls = webhook.urls.iter().map(|url| shown_url(url));
    let first = urls.next().unwrap_or_default();
    let url = match webhook.urls.len() {
        0 | 1 => first,
        n => format!("{first} (+{} more)", n - 1),
    };
    let (last, failures) = match seen {
        Seen::Unknown => ("-".into(), "-".into()),
        Seen::Known {
            last_delivered,
            failures,
            ..
        } => (
            last_delivered.map_or("never".into(), |at| local_time(context, at)),
            failures.to_string(),
        ),
    };
    vec![
        webhook.name.clone(),
        url,
        webhook.environment.to_string(),
        webhook.events.len().to_string(),
        status(webhook, seen, refused(context, webhook)),
        last,
        failures,
    ]
}

fn as_json(webhook: &EventWebhook, seen: &Seen, refused: bool) -> serde_json::Value {
    let urls: Vec<String> = webhook.urls.iter().map(|url| shown_url(url)).collect();
    let (last, failures, gone) = match seen {
        Seen::Unknown => (None, None, None),
        Seen::Known {
            last_delivered,
            failures,
            gone,
        } => (*last_delivered, Some(*failures), Some(*gone)),
    };
    json!({
        "name": webhook.name,
        "stem": webhook.stem,
        "file": webhook.path.display().to_string(),
        "urls": urls,
        "environment": webhook.environment,
        "events": webhook.events,
        "status": match (refused, webhook.enabled) {
            (true, _) => "refused",
            (false, true) => "active",
            (false, false) => "inactive",
        },
        "urls_disabled_by_410": gone,
        "format": webhook.format,
        "description": webhook.description,
        "last_delivery": last,
        "failures": failures,
    })
}

/// What the state database says of a webhook, over all its URLs.
enum Seen {
    /// No state database (at this `--state` path): nothing is known, not zero.
    Unknown,
    Known {
        /// Unix seconds.
        last_delivered: Option<i64>,
        /// Deliveries failed (to be retried) or dead.
        failures: i64,
        /// How many of its URLs a 410 Gone disabled (`keyhook enable` re-enables them).
        gone: usize,
    },
}

/// The state database's record of every webhook source, read once; `None` without one.
struct History(Option<Vec<SourceSummary>>);

impl History {
    /// Reads it only if the state file exists: listing never creates one.
    fn read(context: &Context) -> Result<History> {
        if !context.state_exists()? {
            return Ok(History(None));
        }
        Ok(History(Some(context.open_state()?.source_summaries()?)))
    }

    fn of(&self, webhook: &EventWebhook) -> Seen {
        let Some(summaries) = &self.0 else {
            return Seen::Unknown;
        };
        let sources: Vec<String> = (0..webhook.urls.len())
            .map(|index| source_name(webhook, index))
            .collect();
        let mine = summaries.iter().filter(|s| sources.contains(&s.source));
        let (mut last_delivered, mut failures, mut gone) = (None, 0, 0);
        for summary in mine {
            last_delivered = last_delivered.max(summary.last_delivered);
            failures += summary.failures();
            gone += usize::from(summary.gone.is_some());
        }
        Seen::Known {
            last_delivered,
            failures,
            gone,
        }
    }
}

/// `active` or `inactive` as its file says, and whether a 410 Gone disabled its URLs (as
/// `status` says it).
/// Whether the webhook's file has a problem (`check` says which), so that nothing is sent for
/// it: a file with a duplicate name, say, where neither file is used.
fn refused(context: &Context, webhook: &EventWebhook) -> bool {
    !context.definitions.problems_in(&webhook.path).is_empty()
}

fn status(webhook: &EventWebhook, seen: &Seen, refused: bool) -> String {
    if refused {
        return "REFUSED (see `keyhook check`)".into();
    }
    if !webhook.enabled {
        return "inactive".into();
    }
    match seen {
        Seen::Known { gone, .. } if *gone == webhook.urls.len() => "DISABLED (410 Gone)".into(),
        Seen::Known { gone, .. } if *gone > 0 => format!(
            "active, {gone} of {} URLs DISABLED (410 Gone)",
            webhook.urls.len()
        ),
        _ => "active".into(),
    }
}

fn filters_said(context: &Context, args: &WebhooksListArgs) -> String {
    let mut said = Vec::new();
    if let Some(environment) = context.environment {
        said.push(format!("in {environment}"));
    }
    if let Some(status) = args.status {
        said.push(format!("{status:?}").to_lowercase());
    }
    if let Some(text) = &args.search {
        said.push(format!("matching `{text}`"));
    }
    match said.is_empty() {
        true => format!(" in {}", context.definitions.dir_name()),
        false => format!(" {}", said.join(", ")),
    }
}

/// The webhook called `name`, or a configuration error that says what there is.
pub fn find<'a>(context: &'a Context, name: &str) -> Result<&'a EventWebhook> {
    let definitions = &context.definitions;
    if let Some(problem) = definitions.broken("webhooks", name) {
        return Err(Error::config(anyhow!("{problem}")));
    }
    definitions.webhook(name).ok_or_else(|| {
        Error::config(anyhow!(
            "no webhook is called `{name}` in {} (webhooks: {})",
            definitions.dir.join("webhooks").display(),
            crate::definitions::names(&definitions.webhooks, |w| &w.stem)
        ))
    })
}
