//! `keyhook enable`: re-enable a webhook that a 410 Gone disabled: a task's, an event
//! webhook's, or both when the name given is both's.

use std::io::Write;

use anyhow::anyhow;

use super::{Context, success};
use crate::cli::EnableArgs;
use crate::error::{Error, Result};

pub fn run(context: &Context, args: &EnableArgs, out: &mut impl Write) -> Result {
    let key = args.task.trim();
    let definitions = &context.definitions;
    let task = definitions.task(key);
    let webhook = definitions.webhook(key);
    if task.is_none() && webhook.is_none() {
        // A webhook whose file is gone is still known to the state, by its name.
        if context.state_exists()? {
            let enabled = context.open_state()?.enable_webhook(key)?;
            if enabled > 0 {
                return webhook_enabled(out, key, enabled);
            }
        }
        if let Some(problem) = definitions
            .broken("tasks", key)
            .or_else(|| definitions.broken("webhooks", key))
        {
            return Err(Error::config(anyhow!("{problem}")));
        }
        return Err(Error::config(anyhow!(
            "no task or webhook is called `{key}` in {} (tasks: {}; webhooks: {})",
            definitions.dir.display(),
            crate::definitions::names(&definitions.tasks, |t| &t.stem),
            crate::definitions::names(&definitions.webhooks, |w| &w.name),
        )));
    }
    if let Some(webhook) = webhook {
        // An event webhook: every URL of it that a 410 disabled, kept under its name.
        let enabled = match context.state_exists()? {
            true => context.open_state()?.enable_webhook(&webhook.name)?,
            false => 0,
        };
        if enabled > 0 {
            webhook_enabled(out, &webhook.name, enabled)?;
        } else if task.is_none() {
            writeln!(
                out,
                "{}: webhook was not disabled; nothing changed",
                webhook.name
            )?;
        }
    }
    if let Some(task) = task {
        let state = context.open_state()?;
        let now = context.clock.now().timestamp();
        let was = state.task_state(&task.stem, now)?.webhook_gone;
        state.set_webhook_gone(&task.stem, None)?;
        match was {
            Some(_) => writeln!(
                out,
                "{}: webhook re-enabled; waiting deliveries go with the next `keyhook retry`",
                task.name
            )?,
            None => writeln!(
                out,
                "{}: webhook was not disabled; nothing changed",
                task.name
            )?,
        }
    }
    success()
}

fn webhook_enabled(out: &mut impl Write, name: &str, urls: usize) -> Result {
    writeln!(
        out,
        "{name}: webhook re-enabled ({urls} URL(s)); waiting deliveries go with the next \
         `keyhook dispatch` or `keyhook retry`"
    )?;
    success()
}
