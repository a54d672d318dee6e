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
    // A webhook is re-enabled in a state that exists; a task's run state is made if need be.
    let state = match task.is_some() || context.state_exists()? {
        true => Some(context.open_state()?),
        false => None,
    };
    // An event webhook: every URL of it that a 410 disabled, kept under its name. One whose
    // file is gone is still known to the state, by the name given.
    let webhook_name = webhook.map_or(key, |webhook| webhook.name.as_str());
    let enabled = match &state {
        Some(state) if webhook.is_some() || task.is_none() => state.enable_webhook(webhook_name)?,
        _ => 0,
    };
    if enabled > 0 {
        writeln!(
            out,
            "{webhook_name}: webhook re-enabled ({enabled} URL(s)); waiting deliveries go with \
             the next `keyhook dispatch` or `keyhook retry`"
        )?;
    } else if webhook.is_some() && task.is_none() {
        writeln!(
            out,
            "{webhook_name}: webhook was not disabled; nothing changed"
        )?;
    }
    let (Some(task), Some(state)) = (task, &state) else {
        if webhook.is_some() || enabled > 0 {
            return success();
        }
        if let Some(problem) = definitions
            .broken("tasks", key)
            .or_else(|| definitions.broken("webhooks", key))
        {
            return Err(Error::config(anyhow!("{problem}")));
        }
        return Err(Error::config(anyhow!(
            "no task or webhook is called `{key}` in {} (tasks: {}; webhooks: {})",
            definitions.dir_name(),
            crate::definitions::stems_and_names(&definitions.tasks, |t| (&t.stem, &t.name)),
            crate::definitions::names(&definitions.webhooks, |w| &w.name),
        )));
    };
    let now = context.clock.now().timestamp();
    let was = state.task_state(&task.stem, now)?.webhook_gone;
    state.set_webhook_gone(&task.stem, None)?;
    let what = match was {
        Some(_) => "webhook re-enabled; waiting deliveries go with the next `keyhook retry`",
        None => "webhook was not disabled; nothing changed",
    };
    writeln!(out, "{}: {what}", task.name)?;
    success()
}
