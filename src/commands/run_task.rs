//! `keyhook run-task`: run one task now, whatever its schedule.

mod report;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use super::helping;
use super::sending::{self, Failure, Held, Stop};
use super::{Context, printable};
use crate::cli::RunTaskArgs;
use crate::definitions::{Search, Task};
use crate::delivery::dispatch::Event;
use crate::error::Result;
use crate::state::deliveries::Queue;
use crate::state::runs::TaskState;
use crate::state::{SlotClaim, State, StateError};
use crate::task_source::{self, RecordError, TaskRun};

pub(super) use report::{Report, summary};

/// How a run is asked for.
pub(in crate::commands) struct Options {
    /// The scheduled slot it runs for; `None` runs it unconditionally (`--force`).
    pub slot: Option<i64>,
    pub concurrency: Option<usize>,
    /// Print failures as they happen (and a progress bar on a terminal).
    pub live: bool,
}

pub fn run(context: &Context, args: &RunTaskArgs, out: &mut impl Write) -> Result {
    let task = context.task(&args.name)?;
    let slot = if args.force {
        None
    } else {
        super::current_slot(context, task)?
    };
    let options = Options {
        slot,
        concurrency: args.concurrency,
        live: !args.json,
    };
    let stop = Stop::install();
    let mut report = execute(context, task, &options, &stop, out)?;
    if args.json {
        // The text says it after the summary (`sending::aftermath`); here it is a warning.
        if report.tally.gone && !report.warnings.iter().any(|w| w.contains("410 Gone")) {
            report.warnings.push(sending::gone_warning(task));
        }
        // stdout is one JSON document; what a person should read goes to stderr.
        for warning in &report.warnings {
            writeln!(std::io::stderr(), "{warning}")?;
        }
        // One write: written straight to stdout, which flushes at every newline, the document
        // went out in some 30 writes, a line and its indent apart.
        let mut document = serde_json::to_vec_pretty(&report).map_err(std::io::Error::from)?;
        document.push(b'\n');
        out.write_all(&document)?;
    } else {
        print(context, task, &report, out)?;
    }
    Ok(report.exit(&stop))
}

/// Prints the summary line and what follows from it.
pub(super) fn print(
    context: &Context,
    task: &Task,
    report: &Report,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if let Some(why) = &report.skipped {
        // What this host sent, helping another host's run of the slot, and failed.
        for failure in &report.failures {
            writeln!(out, "{}", failure_line(failure))?;
        }
        return writeln!(out, "{}: {why}", report.task);
    }
    for warning in &report.warnings {
        writeln!(out, "{warning}")?;
    }
    for bad in &report.bad {
        writeln!(out, "bad row: {}; not sent", bad.error)?;
    }
    writeln!(out, "{}", summary(report))?;
    if report.bad_rows > 0 {
        writeln!(
            out,
            "{} license row(s) could not be read and were not sent: fix them in the license \
             database (`keyhook log --status bad` lists them)",
            report.bad_rows
        )?;
    }
    sending::aftermath(context, task, &report.tally, out)
}

/// Validates everything the task needs, records the run, and sends its deliveries.
pub(super) fn execute(
    context: &Context,
    task: &Task,
    options: &Options,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<Report> {
    let started = Instant::now();
    // The task file's own problems first: a missing search is one of them, in check's words.
    context.ensure_valid(&task.path)?;
    let search = context.search_of(task)?;
    context.ensure_valid(&search.path)?;
    let mut report = Report::empty(task);
    let Started {
        mut state,
        mut held,
        task_state,
        now,
    } = match start(context, task, options.slot)? {
        Start::Run(started) => *started,
        Start::Skip(why, state) => {
            report.skipped = Some(why);
            if let Some(state) = state {
                helping::help(context, &state, task, options, stop, &mut report)?;
            }
            return Ok(report);
        }
    };
    let enabled = task.webhook.enabled && context.definitions.settings.webhooks_enabled;
    let run = (task, search, options.slot, now, enabled);
    if !record_run(context, &mut state, run, &task_state, &mut report)? {
        drop(held);
        helping::help(context, &state, task, options, stop, &mut report)?;
        return Ok(report);
    }
    let gone = task_state.webhook_gone.is_some();
    report.sent = enabled && !gone;
    let to_send = report.matched - report.bad_rows;
    match held_back(context, &state, task, (enabled, gone), to_send)? {
        Some(warning) => {
            report.warnings.push(warning);
            report.tally.gone = gone;
        }
        None => {
            held.target.concurrency = workers(options, task, to_send);
            send(context, &state, &held, &mut report, options, stop, out)?;
        }
    }
    if !report.tally.interrupted {
        state.finish_run(
            report.run_id.unwrap_or_default(),
            context.clock.tick().timestamp(),
        )?;
    }
    report.finish(to_send, started, state.is_shared());
    Ok(report)
}

/// `[date]` for this run; a first run whose `first_run_since` lies ahead is refused.
fn first_date(context: &Context, task: &Task, task_state: &TaskState) -> Result<i64> {
    if let Some(problem) = super::first_run_since_ahead(context, task, task_state.last_run) {
        let problem = anyhow::anyhow!("{}: {problem}", task.path.display());
        return Err(crate::error::Error::config(problem));
    }
    Ok(super::date_placeholder(context, task, task_state))
}

/// Whether a run goes ahead, or why it is skipped (with the state when this host may help
/// send the slot's run: another host ran or runs it).
enum Start<'a> {
    Run(Box<Started<'a>>),
    Skip(String, Option<Box<State>>),
}

/// A run going ahead: the state open, the slot claimed, the task's lock held, its state read
/// at `now`.
struct Started<'a> {
    state: State,
    held: Held<'a>,
    task_state: TaskState,
    now: i64,
}

/// Claims the slot and holds the task's lock. A slot that ran is said so first; then, among
/// hosts, the slot's claim decides; once the lock is held, the slot is checked again.
fn start<'a>(context: &Context, task: &'a Task, slot: Option<i64>) -> Result<Start<'a>> {
    let state = context.open_state()?;
    if let Some(slot) = slot
        && let Some(mut why) = already_ran(context, &state, task, slot)?
    {
        // On a SQLite state the lock's holder is on this machine: a run of the slot that
        // still holds it has not ended, and "already ran" (exit 0) would hide that.
        if !state.is_shared() {
            let Some(_lock) = sending::lock(context, &task.stem)? else {
                return Err(sending::locked(task));
            };
            if let Some(stopped) = settle_stopped(context, &state, task, slot)? {
                why = stopped;
            }
        }
        // The task's last slot moves on to it: a slot run early (a clock ahead, then
        // `set-last-run`) is said once when it comes, not at every later call until the next.
        let now = context.clock.now().timestamp();
        state.record_skip(&task.stem, &task.name, slot, now, &why)?;
        return Ok(Start::Skip(why, Some(Box::new(state))));
    }
    if let Some(slot) = slot
        && let SlotClaim::Taken { host } = state.claim_slot(&task.stem, slot)?
    {
        return Ok(Start::Skip(
            taken(context, slot, &host),
            Some(Box::new(state)),
        ));
    }
    // From here the slot (if any) is this process's: if the run does not go ahead, the claim
    // goes back, so that the next call (here or on another host) runs the slot, rather than
    // wait for the lease to end and meanwhile say the slot is run by this host.
    let ready = ready(context, &state, task, slot);
    if let (Some(slot), Err(_) | Ok(Ready::Locked)) = (slot, &ready) {
        let released = state.release_slot(&task.stem, slot);
        if matches!(ready, Ok(Ready::Locked)) {
            released?;
        }
    }
    match ready? {
        Ready::Locked => Err(sending::locked(task)),
        Ready::Ran(why) => Ok(Start::Skip(why, None)),
        Ready::Go(ready) => {
            let (held, task_state, now) = *ready;
            Ok(Start::Run(Box::new(Started {
                state,
                held,
                task_state,
                now,
            })))
        }
    }
}

/// What [`start`] finds once the slot is claimed.
enum Ready<'a> {
    /// Another process holds the task's lock.
    Locked,
    /// The slot ran meanwhile: why nothing is done.
    Ran(String),
    /// The lock held, the task's state read at the time given.
    Go(Box<(Held<'a>, TaskState, i64)>),
}

/// Takes the task's lock and reads its state; checks the slot again under the lock.
fn ready<'a>(
    context: &Context,
    state: &State,
    task: &'a Task,
    slot: Option<i64>,
) -> Result<Ready<'a>> {
    let Some(held) = sending::hold(context, state, task)? else {
        return Ok(Ready::Locked);
    };
    let now = context.clock.now().timestamp();
    let task_state = state.task_state(&task.stem, now)?;
    if let Some(warning) = super::future_state(context, task, &task_state) {
        writeln!(std::io::stderr(), "warning: {warning}")?;
    }
    if let Some(slot) = slot
        && let Some(why) = already_ran(context, state, task, slot)?
    {
        return Ok(Ready::Ran(why));
    }
    Ok(Ready::Go(Box::new((held, task_state, now))))
}

/// [`record`]s the run of `task` with `search` for `slot` at `now`, sending or not, after its
/// placeholders' values. If that fails, nothing of the run is recorded, and its claim on the
/// slot goes back, so that the next call (here or on another host) runs it, rather than wait
/// for the lease to end and meanwhile say the slot is run by this host.
fn record_run(
    context: &Context,
    state: &mut State,
    (task, search, slot, now, sends): (&Task, &Search, Option<i64>, i64, bool),
    task_state: &TaskState,
    report: &mut Report,
) -> Result<bool> {
    let recorded = first_date(context, task, task_state)
        .and_then(|last_run| super::placeholder_values(context, Some(task), search, Some(last_run)))
        .and_then(|values| {
            let run = TaskRun {
                task,
                search,
                values: &values,
                slot,
                now,
                sends,
            };
            record(context, state, &run, report)
        });
    if let (Err(_), Some(slot)) = (&recorded, slot) {
        let _ = state.release_slot(&task.stem, slot);
    }
    recorded
}

/// Records every match as a pending delivery (when the run sends), before the first POST.
/// `false` when another host ran the slot meanwhile: `report.skipped` says so.
fn record(
    context: &Context,
    state: &mut State,
    run: &TaskRun,
    report: &mut Report,
) -> Result<bool> {
    let mut db = context.license_db()?;
    match task_source::record(state, db.as_mut(), run) {
        Ok(recorded) => report.recorded(recorded),
        Err(RecordError::State(StateError::SlotTaken { slot, .. })) => {
            report.skipped = Some(taken(context, slot, "another host"));
            return Ok(false);
        }
        Err(error) => return Err(record_error(run.search, error)),
    }
    Ok(true)
}

/// What a host that lost the race for a slot says (and exits 0).
fn taken(context: &Context, slot: i64, host: &str) -> String {
    format!(
        "its slot at {} is run by host `{host}`; nothing to do here",
        sending::local_time(context, slot)
    )
}

/// Why a run for `slot` is not needed: that slot already ran.
fn already_ran(context: &Context, state: &State, task: &Task, slot: i64) -> Result<Option<String>> {
    if !state.slot_ran(&task.stem, slot)? {
        return Ok(None);
    }
    // A slot that run-due skipped (missed by more than `catch_up`) did not run: nothing was
    // sent for it, and "already ran" would send the user away.
    let skipped = state
        .latest_skips()?
        .into_iter()
        .find(|run| run.task == task.stem && run.slot == Some(slot));
    if let Some(run) = skipped {
        return Ok(Some(format!(
            "its slot at {} was skipped by run-due ({}), so nothing was sent for it; \
             `run-task --force` runs it now",
            sending::local_time(context, slot),
            run.skipped.unwrap_or_default()
        )));
    }
    Ok(Some(format!(
        "already ran for its slot at {}; nothing to do (`run-task --force` runs it again)",
        sending::local_time(context, slot)
    )))
}

/// A run of `slot` that a kill or a stop left unfinished, when no process holds the task's lock
/// (the caller does): it is finished now (its last run recorded). What it did not send goes
/// out with the retries, as ever. Says so; the caller moves the task's last slot on, so once.
fn settle_stopped(
    context: &Context,
    state: &State,
    task: &Task,
    slot: i64,
) -> Result<Option<String>> {
    let Some(run_id) = state.unfinished_run(&task.stem, slot)? else {
        return Ok(None);
    };
    state.finish_run(run_id, context.clock.tick().timestamp())?;
    Ok(Some(format!(
        "its run for the slot at {} was stopped before it finished; what it did not send goes \
         out with the retries (`keyhook log --task {}`)",
        sending::local_time(context, slot),
        task.stem
    )))
}

/// Why a run could not be recorded, as the command reports it.
fn record_error(search: &crate::definitions::Search, error: RecordError) -> crate::error::Error {
    match error {
        RecordError::Query(error) => super::query_error(search, error),
        RecordError::State(error) => error.into(),
        error @ RecordError::Thread { .. } => crate::error::Error::runtime(error),
    }
}

/// How many of `task`'s deliveries wait over all its runs: runs go on recording while its
/// webhook is disabled.
fn waiting(state: &State, task: &Task) -> Result<u64> {
    let counts = state.waiting_by_task()?;
    let count = counts.into_iter().find(|(stem, _)| *stem == task.stem);
    Ok(count.map_or(0, |(_, count)| u64::try_from(count).unwrap_or(0)))
}

/// Why nothing is sent, when nothing is: the webhook is disabled, or its receiver said 410.
fn held_back(
    context: &Context,
    state: &State,
    task: &Task,
    (enabled, gone): (bool, bool),
    this_run: u64,
) -> Result<Option<String>> {
    if !enabled {
        return Ok(Some(format!(
            "{}: webhook disabled ({}); nothing was sent",
            task.name,
            sending::switched_off(context, task).unwrap_or_default()
        )));
    }
    if !gone {
        return Ok(None);
    }
    let waiting = waiting(state, task)?;
    Ok(Some(format!(
        "WARNING: task `{}`: webhook DISABLED since its receiver answered 410 Gone; \
         {waiting} deliveries wait ({this_run} of them from this run). Fix the url, then \
         `keyhook enable {}`",
        task.name,
        super::printable::shell_word(&task.stem)
    )))
}

/// Never more workers (threads, connections) than deliveries.
fn workers(options: &Options, task: &Task, deliveries: u64) -> usize {
    let wanted = options.concurrency.or(task.concurrency).unwrap_or(1);
    wanted
        .min(usize::try_from(deliveries).unwrap_or(usize::MAX))
        .max(1)
}

/// Sends the run's deliveries, showing failures as they come (or after, without a terminal).
fn send(
    context: &Context,
    state: &State,
    held: &Held,
    report: &mut Report,
    options: &Options,
    stop: &Stop,
    out: &mut impl Write,
) -> Result<()> {
    let failures = Mutex::new(Vec::new());
    let progress = progress_bar(options.live, report.matched - report.bad_rows);
    let observe = |event: &Event| observe(event, options.live, &progress, &failures);
    let queue = Queue::Run(&held.task.stem, report.run_id.unwrap_or_default());
    report.tally = held.send(context, state, queue, stop, &observe)?;
    progress.finish_and_clear();
    report.failures = failures.into_inner().unwrap_or_default();
    if options.live && progress.is_hidden() {
        for failure in &report.failures {
            writeln!(out, "{}", failure_line(failure))?;
        }
    }
    Ok(())
}

fn observe(event: &Event, live: bool, progress: &ProgressBar, failures: &Mutex<Vec<Failure>>) {
    progress.inc(1);
    let Some(failure) = Failure::of(event) else {
        return;
    };
    if live && !progress.is_hidden() {
        progress.println(failure_line(&failure));
    }
    if let Ok(mut failures) = failures.lock() {
        failures.push(failure);
    }
}

fn failure_line(failure: &Failure) -> String {
    format!(
        "failed: license {} ({}): {}",
        failure.license_id,
        printable::short(&failure.activation_key),
        printable::short(&failure.error)
    )
}

/// A progress bar on a terminal; hidden (and free) otherwise, so cron mails plain lines.
fn progress_bar(live: bool, total: u64) -> ProgressBar {
    if !live || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} sent, {per_sec}, eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
