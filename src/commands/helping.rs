//! On a shared (PostgreSQL) state, a host that finds its slot claimed by another host helps
//! send that run: it waits for the run to be recorded, then claims and sends the run's
//! deliveries beside the host that recorded it, so two hosts send a slot about twice as fast.
//! Each delivery still goes to one sender at a time (claims with a lease); the task's lock
//! stays with the host that recorded the run.

use std::sync::Mutex;
use std::time::Duration;

use super::Context;
use super::run_task::Options;
use super::run_task::Report;
use super::sending::{self, Failure, Stop};
use crate::definitions::Task;
use crate::delivery::dispatch::{self, Event};
use crate::error::Result;
use crate::state::deliveries::Queue;
use crate::state::{SlotRun, State};

/// How often a helper looks whether the run it waits for was recorded.
const POLL: Duration = Duration::from_millis(50);

/// Sends what is left of the run of `options.slot` beside the host that recorded it, and
/// adds what this host sent to `report`. Nothing on SQLite, for a forced run, or when the
/// webhook is disabled here.
pub(super) fn help(
    context: &Context,
    state: &State,
    task: &Task,
    options: &Options,
    stop: &Stop,
    report: &mut Report,
) -> Result<()> {
    let enabled = task.webhook.enabled && context.definitions.settings.webhooks_enabled;
    let Some(slot) = options.slot.filter(|_| state.is_shared() && enabled) else {
        return Ok(());
    };
    let Some(run_id) = wait_for_run(state, &task.stem, slot, stop)? else {
        return Ok(());
    };
    let now = context.clock.now().timestamp();
    if state.task_state(&task.stem, now)?.webhook_gone.is_some() {
        return Ok(());
    }
    let mut target = sending::target(context, task)?;
    target.concurrency = options.concurrency.or(task.concurrency).unwrap_or(1).max(1);
    let failures = Mutex::new(Vec::new());
    let observe = |event: &Event| {
        if let (Some(failure), Ok(mut failures)) = (Failure::of(event), failures.lock()) {
            failures.push(failure);
        }
    };
    let queue = Queue::Run(&task.stem, run_id);
    let tally = dispatch::send(
        state.queue(),
        queue,
        &target,
        &context.clock,
        stop.flag(),
        &observe,
    )?;
    sending::warn_lost(state, &task.name);
    let (delivered, failed) = (tally.delivered, tally.retrying + tally.dead);
    if delivered + failed > 0
        && let Some(why) = &mut report.skipped
    {
        why.push_str(&format!(
            "; this host helped send its deliveries: {delivered} delivered, {failed} failed"
        ));
    }
    report.delivered = delivered;
    report.failed = failed;
    report.failures = failures.into_inner().unwrap_or_default();
    report.tally = tally;
    Ok(())
}

/// The id of the slot's run once it is recorded and still sending; `None` when it finished,
/// when its claim was given back or expired unrecorded, or on a stop.
fn wait_for_run(state: &State, task: &str, slot: i64, stop: &Stop) -> Result<Option<i64>> {
    loop {
        match state.slot_run(task, slot)? {
            SlotRun::Sending(run_id) => return Ok(Some(run_id)),
            SlotRun::Over => return Ok(None),
            SlotRun::Waiting if stop.exit().is_some() => return Ok(None),
            SlotRun::Waiting => std::thread::sleep(POLL),
        }
    }
}
