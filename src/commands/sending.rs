//! What the sending commands (`run-task`, `retry`, `resend`, `run-due`) share: the task lock,
//! the resolved target, stop signals, and how an outcome is printed and turned into an exit.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::anyhow;
use chrono::TimeZone;

use super::Context;
use crate::definitions::Task;
use crate::definitions::retry::policy;
use crate::delivery::run::{Tally, Target};
use crate::delivery::signature::Signer;
use crate::error::{Error, Exit, Result};
use crate::state::lock::{Acquired, TaskLock};

/// Set by SIGINT or SIGTERM: senders finish the request in flight, record it, and stop.
pub struct Stop {
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
    any: Arc<AtomicBool>,
}

impl Stop {
    /// Installs the handlers. A second Ctrl-C ends the process at once.
    pub fn install() -> Stop {
        let stop = Stop {
            interrupt: Arc::new(AtomicBool::new(false)),
            terminate: Arc::new(AtomicBool::new(false)),
            any: Arc::new(AtomicBool::new(false)),
        };
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        for (signal, own) in [(SIGINT, &stop.interrupt), (SIGTERM, &stop.terminate)] {
            // Registered in this order, the second signal exits before the flag is seen again.
            let _ = flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(own));
            let _ = flag::register(signal, Arc::clone(own));
            let _ = flag::register(signal, Arc::clone(&stop.any));
        }
        stop
    }

    /// The flag senders watch.
    pub fn flag(&self) -> &AtomicBool {
        &self.any
    }

    /// The same flag, for a callback that must own it (SQLite's progress handler).
    pub fn shared_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.any)
    }

    /// The exit for a stopped run: 130 after SIGINT, 143 after SIGTERM.
    pub fn exit(&self) -> Option<Exit> {
        if self.terminate.load(Ordering::SeqCst) {
            Some(Exit::Interrupted(15))
        } else if self.interrupt.load(Ordering::SeqCst) {
            Some(Exit::Interrupted(2))
        } else {
            None
        }
    }
}

/// Takes the task's lock, or says who has it.
pub fn lock(context: &Context, task: &str) -> Result<Option<TaskLock>> {
    // A state path that cannot hold the file is the error to show, not its lock's.
    context.state_exists()?;
    let acquired = TaskLock::try_acquire(&context.state_path, task).map_err(|error| {
        Error::runtime(anyhow!(
            "could not take the lock of task `{task}` ({}): {}; keyhook needs to write in \
             the folder of the state database (--state, KEYHOOK_STATE)",
            crate::state::lock::lock_path(&context.state_path, task).display(),
            crate::file_access::describe(&error)
        ))
    })?;
    match acquired {
        Acquired::Held(lock) => Ok(Some(lock)),
        Acquired::Busy(_) => Ok(None),
    }
}

/// The error for a task another process is running.
pub fn locked(task: &Task) -> Error {
    Error::locked(anyhow!(
        "task `{}` is being run by another keyhook process; this one did nothing",
        task.name
    ))
}

/// The target of a task: its secret resolved and its retry policy settled.
pub fn target(context: &Context, task: &Task) -> Result<Target> {
    resolve_target(context, task).map_err(|error| {
        Error::config(anyhow!(
            "task `{}` ({}): [webhook]: {error}",
            task.name,
            task.path.display()
        ))
    })
}

/// [`target`], with the problem in words about the `[webhook]` table; `check` runs this too.
pub fn resolve_target(context: &Context, task: &Task) -> std::result::Result<Target, String> {
    let mut secrets = task.webhook.secret.resolve_all()?;
    secrets.extend(task.webhook.previous_secrets.iter().cloned());
    let signer = Signer::new(&task.webhook.schemes, &secrets)?;
    let settings = &context.definitions.settings;
    let policy = policy(&task.webhook.retry, &settings.retry)?;
    let tls = task.webhook.tls.over(&settings.tls).load()?;
    Ok(Target::new(task, signer, policy, tls))
}

/// The exit for a tally: failures, a 410, or a stop.
pub fn exit_of(tally: &Tally, stop: &Stop) -> Exit {
    if let Some(exit) = stop.exit() {
        return exit;
    }
    if tally.retrying > 0 || tally.dead > 0 || tally.gone {
        Exit::DeliveryFailed
    } else {
        Exit::Success
    }
}

/// The lines after a summary: what will be retried, what died, what was left.
pub fn aftermath(
    context: &Context,
    task: &Task,
    tally: &Tally,
    out: &mut impl Write,
) -> std::io::Result<()> {
    if tally.gone {
        writeln!(
            out,
            "WARNING: {} answered 410 Gone: the webhook of task `{}` is DISABLED; \
             fix its url, then run `keyhook enable {}`",
            crate::definitions::task::shown_url(&task.webhook.url),
            task.name,
            task.stem
        )?;
    }
    if tally.retrying > 0 {
        writeln!(
            out,
            "{} failed deliveries will be retried (`keyhook retry` or `keyhook run-due`)",
            tally.retrying
        )?;
    }
    if tally.dead > 0 {
        writeln!(
            out,
            "{} deliveries are dead (`keyhook log --status dead`)",
            tally.dead
        )?;
    }
    if tally.interrupted {
        writeln!(
            out,
            "stopped by a signal: the rest stays pending for `keyhook retry`"
        )?;
    }
    let _ = context;
    Ok(())
}

/// A Unix time in the configured zone, for display.
pub fn local_time(context: &Context, unix: i64) -> String {
    match context.clock.zone().timestamp_opt(unix, 0).single() {
        Some(at) => at.format("%Y-%m-%d %H:%M:%S").to_string(),
        None => unix.to_string(),
    }
}
