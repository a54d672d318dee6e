//! `keyhook enable`: re-enable a webhook that a 410 Gone disabled.

use std::io::Write;

use super::{Context, success};
use crate::cli::EnableArgs;
use crate::error::Result;

pub fn run(context: &Context, args: &EnableArgs, out: &mut impl Write) -> Result {
    if context.definitions.task(&args.task).is_none() && context.state_exists()? {
        // An event webhook: every URL of it that a 410 disabled.
        let enabled = context.open_state()?.enable_webhook(&args.task)?;
        if enabled > 0 {
            writeln!(
                out,
                "{}: webhook re-enabled ({enabled} URL(s)); waiting deliveries go with the next \
                 `keyhook dispatch` or `keyhook retry`",
                args.task
            )?;
            return success();
        }
    }
    let task = context.task(&args.task)?;
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
    success()
}
